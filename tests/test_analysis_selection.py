"""gradlab.analysis.selection: grid axes, the alive mask, pooled axes, run costs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import divergence_dataset

from gradlab import analysis, schema
from gradlab.analysis.selection import run_cost


@pytest.fixture
def ds() -> xr.Dataset:
    return divergence_dataset()


def test_grid_axes_and_alive(ds):
    assert analysis.grid_axes(ds) == ("seed", "learning_rate", "init_scale")
    live = analysis.alive(ds).sel(optimizer="sgd", seed=0, init_scale=2.0)
    # diverged at step 3 (lr = 0.1): alive at 0..3 (the step of divergence counts), dead at 4
    np.testing.assert_array_equal(live.sel(learning_rate=0.1), [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=1.0), [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(live.sel(learning_rate=0.01), [1, 1, 1, 1, 1])
    adam = analysis.alive(ds).sel(optimizer="adam", seed=1, learning_rate=1.0, init_scale=2.0)
    np.testing.assert_array_equal(adam, [1, 0, 0, 0, 0])


def test_pool_axes_validates_and_keeps_the_order_given(ds):
    assert analysis.pool_axes(ds, None) == []
    assert analysis.pool_axes(ds, "init_scale") == ["init_scale"]
    assert analysis.pool_axes(ds, ("init_scale", "seed")) == ["init_scale", "seed"]
    # "seed" may be named in a sweep without seeds: nothing to pool
    assert analysis.pool_axes(ds.isel(seed=0, drop=True), ["seed", "init_scale"]) == ["init_scale"]
    with pytest.raises(ValueError, match=r"\['width'\] not grid axes.*'learning_rate'"):
        analysis.pool_axes(ds, ["seed", "width"])


def test_quiet_nan_warnings_silences_only_empty_slice_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with analysis.quiet_nan_warnings():
            assert np.isnan(np.nanmean(np.array([np.nan])))
            assert np.isnan(np.nanmax(np.array([np.nan])))
            assert np.isinf(np.array([1.0]) / 0.0)[0]
        with pytest.raises(RuntimeWarning):  # restored on exit
            np.nanmean(np.array([np.nan]))
        with pytest.raises(UserWarning), analysis.quiet_nan_warnings():
            warnings.warn("not about NaN", UserWarning, stacklevel=1)


@pytest.mark.parametrize(
    "name", [n for n, v in schema.VARIABLES.items() if v.dims == () and v.dtype == "float32"]
)
def test_run_cost_direction_comes_from_the_schema(ds, name):
    ds = ds.assign({name: ds["final_loss"].fillna(0.5) * 0 + 0.25})
    cost = run_cost(ds, name)
    expected = -0.25 if schema.VARIABLES[name].higher_is_better else 0.25
    alive_runs = ~ds["diverged"]
    np.testing.assert_array_equal(cost.where(alive_runs, expected), expected)
    assert np.isposinf(cost.where(ds["diverged"], np.inf)).all()  # diverged: +inf
    with pytest.raises(ValueError, match="per-step"):
        run_cost(ds, "loss")


def test_select_values_names_the_axis_and_its_values(ds):
    picked = analysis.select_values(ds, {"learning_rate": 0.1, "init_scale": [2.0]})
    assert "learning_rate" not in picked.dims and list(picked["init_scale"].values) == [2.0]
    np.testing.assert_array_equal(
        picked["diverged"].sel(init_scale=2.0),
        ds["diverged"].sel(learning_rate=0.1, init_scale=2.0),
    )
    # xarray alone raises a bare KeyError that names neither the axis nor its values
    with pytest.raises(KeyError):
        ds.sel(init_scale=3.0)
    with pytest.raises(
        ValueError,
        match=r"^init_scale = 3\.0 is not in the Dataset; its values: \[1\.0, 2\.0\] "
        r"\(nearest: 2\.0\)$",
    ):
        analysis.select_values(ds, {"init_scale": 3.0})
    with pytest.raises(ValueError, match=r"learning_rate = 0\.5, learning_rate = 2 are not"):
        analysis.select_values(ds, {"learning_rate": [0.01, 0.5, 2]})
    with pytest.raises(ValueError, match=r"optimizer = 'rmsprop' is not .* \['sgd', 'adam'\]$"):
        analysis.select_values(ds, {"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match=r"\['width'\] are not dims of the Dataset"):
        analysis.select_values(ds, {"width": 64})
    with pytest.raises(ValueError, match=r"step = 7 is not .* \[0, 1, 2, 3, 4\]"):
        analysis.select_values(ds, {"step": 7})


def test_per_parameter_rms_against_numpy():
    """‖g_l‖/√n_l is the RMS of the layer's gradient entries, whatever the layer's size."""
    rng = np.random.default_rng(0)
    sizes = [784 * 10 + 10, 10 * 10 + 10, 10 * 10 + 10, 0]  # an MLP's layers, one without params
    grads = [
        rng.normal(scale=s, size=(3, n)) for s, n in zip([1.0, 2.0, 0.5, 1.0], sizes, strict=True)
    ]
    norms = np.stack([np.linalg.norm(g, axis=-1) for g in grads], axis=-1)  # (seed, layer)
    ds = xr.Dataset(
        {
            "grad_norm_layer": (("optimizer", "seed", "step", "layer"), norms[None, :, None, :]),
            "act_rms_layer": (("optimizer", "seed", "step", "layer"), norms[None, :, None, :]),
            "diverged": (("optimizer", "seed"), np.zeros((1, 3), bool)),
        },
        coords={"optimizer": ["sgd"], "seed": [0, 1, 2], "step": [0], "layer": np.arange(4),
                "layer_size": ("layer", sizes)},
    )  # fmt: skip
    rms = analysis.per_parameter_rms(ds, "grad_norm_layer")
    assert rms.name == "grad_rms_layer" and rms.dims == ds["grad_norm_layer"].dims
    for layer in range(3):
        expected = np.sqrt(np.mean(grads[layer] ** 2, axis=-1))  # over the layer's entries
        np.testing.assert_allclose(rms.isel(optimizer=0, step=0, layer=layer), expected)
    assert np.isnan(rms.isel(layer=3)).all()  # no parameters: no RMS (not inf)
    with pytest.raises(ValueError, match=r"not a per-layer norm over parameters.*grad_norm_layer"):
        analysis.per_parameter_rms(ds, "act_rms_layer")  # already an RMS, over units
    with pytest.raises(ValueError, match="no layer_size coordinate"):
        analysis.per_parameter_rms(ds.drop_vars("layer_size"), "grad_norm_layer")
