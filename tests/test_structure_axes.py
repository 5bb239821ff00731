"""Width and depth as grid axes: one program per value, every width in one Dataset."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab as gl
from gradlab.engine.plan import bytes_per_run


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:])


def _spec(data, hidden, grid):
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=hidden),
        data=data,
        optimizers=("sgd",),
        grid={"seed": [0, 1], "learning_rate": [0.1, 1.0], **grid},
        steps=4,
        batch_size=8,
    )


def test_hidden_for_sets_width_and_depth():
    model = gl.ModelSpec(hidden=(10, 10))
    assert model.hidden_for() == (10, 10)
    assert model.hidden_for(width=32) == (32, 32)
    assert model.hidden_for(depth=3) == (10, 10, 10)
    assert model.hidden_for(width=8, depth=1) == (8,)
    assert gl.ModelSpec(hidden=()).hidden_for(width=5, depth=2) == (5, 5)


@pytest.fixture(scope="module")
def structured(data):
    return gl.run(_spec(data, (4,), {"width": [4, 16], "depth": [1, 3]}), progress=False)


@pytest.mark.slow  # six programs: about 8 s
def test_each_width_and_depth_trains_as_its_own_model(structured, data):
    ds = structured
    assert ds["layer_width"].dims == ("width", "depth", "layer")
    assert ds["layer_width"].sel(width=16, depth=3).values.tolist() == [16, 16, 16, 2]
    assert ds["layer_width"].sel(width=4, depth=1).values.tolist() == [4, 2, 0, 0]
    # 6 inputs -> 16 (+bias) is 112 parameters; 16 -> 16 is 272; 16 -> 2 is 34.
    assert ds["layer_size"].sel(width=16, depth=3).values.tolist() == [112, 272, 272, 34]
    for width, depth in [(16, 3), (4, 1)]:
        alone = gl.run(_spec(data, (width,) * depth, {}), progress=False)
        point = ds.sel(width=width, depth=depth)
        n = depth + 1
        for v in ("final_loss", "loss", "test_accuracy"):
            np.testing.assert_array_equal(point[v].values, alone[v].values)
        np.testing.assert_array_equal(
            point["grad_norm_layer"].isel(layer=slice(0, n)).values, alone["grad_norm_layer"].values
        )
        assert point["grad_norm_layer"].isel(layer=slice(n, None)).isnull().all()  # padding


def test_the_memory_estimate_takes_the_largest_model(data):
    small = _spec(data, (4,), {})
    wide = _spec(data, (4,), {"width": [4, 256]})
    deep = _spec(data, (4,), {"depth": [1, 8], "width": [256]})
    sizes = [bytes_per_run(s, data, 4, 8) for s in (small, wide, deep)]
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[1] == bytes_per_run(_spec(data, (256,), {}), data, 4, 8)


@pytest.mark.parametrize(
    ("hidden", "grid", "field"),
    [
        ((4,), {"width": [0, 4]}, "grid.width"),
        ((4,), {"depth": [2.5]}, "grid.depth"),
        ((4, 8), {"depth": [1, 2]}, "grid.depth"),
        ((), {"width": [4]}, "grid.width"),
    ],
)
def test_bad_structure_axes_are_refused(data, hidden, grid, field):
    with pytest.raises(gl.ConfigError, match=rf"^{field}"):
        _spec(data, hidden, grid)


def test_structure_axes_need_a_model_spec(data):
    module = gl.models.make_model(gl.ModelSpec(hidden=(4,)), 2)
    with pytest.raises(gl.ConfigError, match=r"^grid.width: needs a ModelSpec"):
        gl.SweepSpec(model=module, data=data, grid={"width": [4, 8]}, steps=2)
