"""The fractal trainability boundary (Sohl-Dickstein 2024): its data set, the box-counting
dimension against sets of known dimension, the zoom helper and the figures.

The mean-field parametrization itself is tested in ``tests/test_parametrization.py`` against
the paper's reference notebook.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from PIL import Image, ImageDraw
from scipy import stats

import gradlab as gl
from gradlab.analysis import fractal as fa
from tests.analysis_datasets import dataset


# -- the data set ---------------------------------------------------------------------------------
def test_gaussian_data_are_independent_standard_normals():
    data = gl.data.load("gaussian", seed=5, n_train=20_000, n_test=10, input_dim=3, output_dim=2)
    assert data.num_classes is None
    assert data.x_train.shape == (20_000, 3) and data.y_train.shape == (20_000, 2)
    assert data.x_test.shape == (10, 3) and data.y_test.shape == (10, 2)
    z = np.concatenate([data.x_train, data.y_train], axis=1).astype(np.float64)
    # N(0, I_5): means within 4 standard errors of 0, the covariance within 0.05 of I.
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(len(z)))
    np.testing.assert_allclose(np.cov(z.T), np.eye(5), atol=0.05)
    # The first examples do not depend on how many are asked for; the seed changes them.
    few = gl.data.load("gaussian", seed=5, n_train=7, input_dim=3, output_dim=2)
    np.testing.assert_array_equal(few.x_train, data.x_train[:7])
    np.testing.assert_array_equal(few.y_train, data.y_train[:7])
    other = gl.data.load("gaussian", seed=6, n_train=7, input_dim=3, output_dim=2)
    assert not np.array_equal(other.x_train, few.x_train)


def test_gaussian_defaults_are_the_papers_setup():
    data = gl.data.load("gaussian")
    # 16 inputs, one target, as many examples as the parameters of 16 -> 16 -> 1 without biases
    assert data.x_train.shape == (16 * 16 + 16, 16) and data.y_train.shape == (272, 1)
    assert data.x_test.shape == (0, 16)


@pytest.mark.parametrize("option", [{"input_dim": 0}, {"output_dim": 1.5}, {"width": 3}])
def test_gaussian_bad_options_name_the_field(option):
    name = next(iter(option))
    with pytest.raises(gl.ConfigError, match=name):
        gl.data.load("gaussian", **option)


# -- box counting against sets of known dimension ----------------------------------------------
KOCH = math.log(4) / math.log(3)  # the Koch curve, and the product of two middle-third Cantor sets


def grid_dataset(outcome: np.ndarray) -> xr.Dataset:
    """A result Dataset over lr_mult_0 x lr_mult_1 (log-spaced) whose runs diverged where
    ``outcome`` is true (at step 1)."""
    n, m = outcome.shape
    grid = {"lr_mult_0": list(np.logspace(-1, 3, n)), "lr_mult_1": list(np.logspace(0, 2, m))}
    return dataset(np.where(outcome, 1, -1)[None], grid, chains=("sgd",))


def koch_snowflake(level: int) -> np.ndarray:
    """The vertices of the Koch snowflake after ``level`` replacements of every segment by four
    (the middle third replaced by two sides of an equilateral triangle, pointing outwards)."""
    pts = np.array([[0.0, 0.0], [0.5, math.sqrt(3) / 2], [1.0, 0.0]])
    turn = np.array([[0.5, -math.sqrt(3) / 2], [math.sqrt(3) / 2, 0.5]])  # +60 degrees
    for _ in range(level):
        a, b = pts, np.roll(pts, -1, axis=0)
        third = (b - a) / 3
        tip = a + third + third @ turn.T
        pts = np.stack([a, a + third, tip, a + 2 * third], axis=1).reshape(-1, 2)
    return pts


def rendered_snowflake(n: int) -> np.ndarray:
    """The inside of a level-7 Koch snowflake on an n x n grid, filled by PIL."""
    pts = koch_snowflake(7)
    lo, hi = pts.min(0), pts.max(0)
    xy = (pts - (lo + hi) / 2) / ((hi - lo).max() * 1.05) * n + n / 2
    image = Image.new("1", (n, n), 0)
    ImageDraw.Draw(image).polygon([tuple(p) for p in xy], fill=1)
    return np.array(image, bool)


def cantor_set(level: int, keep: np.ndarray) -> np.ndarray:
    """A 3^level x 3^level image: each kept cell of the 3 x 3 pattern ``keep`` replaced by the
    whole pattern, ``level`` times (Sierpinski's carpet, Cantor dust)."""
    image = np.ones((1, 1), bool)
    for _ in range(level):
        image = np.block(
            [[image if keep[i, j] else np.zeros_like(image) for j in range(3)] for i in range(3)]
        )
    return image


def test_boundary_image_marks_neighbourhoods_with_both_outcomes():
    rng = np.random.default_rng(0)
    a = rng.random((9, 7)) < 0.5
    want = np.zeros((8, 6), bool)
    for i in range(8):
        for j in range(6):
            block = a[i : i + 2, j : j + 2]
            want[i, j] = block.any() and not block.all()
    np.testing.assert_array_equal(fa.boundary_image(a), want)


def test_box_counts_are_the_fewest_boxes_over_the_offsets():
    rng = np.random.default_rng(1)
    mask = rng.random((23, 17)) < 0.03
    for s in (2, 4, 8):
        best = math.inf
        for oy in {0, s // 4, s // 2, 3 * s // 4}:
            for ox in {0, s // 4, s // 2, 3 * s // 4}:
                boxes = {((i + oy) // s, (j + ox) // s) for i, j in np.argwhere(mask)}
                best = min(best, len(boxes))
        assert fa.box_counts(mask, [s])[0] == best


@pytest.mark.parametrize("angle", [0, 17, 30, 45, 72])
def test_a_straight_boundary_has_dimension_one(angle):
    n = 256
    rows, cols = np.mgrid[:n, :n]
    slope = math.tan(math.radians(angle))
    outcome = (cols - n / 2) > slope * (rows - n / 2) + 0.3
    fit = gl.analysis.fractal_dimension(grid_dataset(outcome))
    assert abs(fit.dimension - 1) < 0.05, fit


def test_a_squeezed_dataset_is_one_image_too():
    # gl.run(spec).squeeze(drop=True) drops the one-chain optimizer dim
    n = 64
    rows, cols = np.mgrid[:n, :n]
    ds = grid_dataset(cols > rows + 0.3).squeeze(drop=True)
    assert "optimizer" not in ds.dims
    assert abs(gl.analysis.fractal_dimension(ds).dimension - 1) < 0.1


def test_a_boundary_that_fills_the_square_has_dimension_two():
    rows, cols = np.mgrid[:128, :128]
    checkerboard = (rows + cols) % 2 == 0  # every cell differs from its four neighbours
    fit = gl.analysis.fractal_dimension(grid_dataset(checkerboard))
    assert fit.dimension == pytest.approx(2, abs=1e-12)
    filled = gl.analysis.box_counting_dimension(np.ones((256, 256), bool))
    assert filled.dimension == pytest.approx(2, abs=1e-12)


def test_the_koch_snowflakes_boundary_has_the_koch_dimension():
    fit = gl.analysis.fractal_dimension(grid_dataset(rendered_snowflake(512)))
    assert abs(fit.dimension - KOCH) < 0.05, fit
    assert fit.ci[0] < KOCH < fit.ci[1]


def test_cantor_type_sets_have_their_dimension():
    dust = cantor_set(6, np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]], bool))  # 729 x 729
    assert abs(gl.analysis.box_counting_dimension(dust).dimension - KOCH) < 0.05
    # counted in boxes of 3^k cells the self-similar sets give their dimension exactly
    carpet = cantor_set(6, np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool))
    fit = gl.analysis.box_counting_dimension(carpet, sizes=[3, 9, 27, 81])
    np.testing.assert_array_equal(fit.counts, 8 ** np.arange(5, 1, -1))
    assert fit.dimension == pytest.approx(math.log(8) / math.log(3), abs=1e-12)
    # the boundary of the dust (outcome: inside it) has the dust's dimension too
    assert abs(gl.analysis.fractal_dimension(grid_dataset(dust)).dimension - KOCH) < 0.05


def test_the_fit_is_least_squares_with_one_intercept_per_zoom_level():
    # one level: the slope, its standard error and interval are linregress's
    outcome = rendered_snowflake(256)
    fit = gl.analysis.fractal_dimension(grid_dataset(outcome))
    ref = stats.linregress(np.log(1 / fit.sizes), np.log(fit.counts))
    assert fit.dimension == pytest.approx(ref.slope, rel=1e-12)
    assert fit.stderr == pytest.approx(ref.stderr, rel=1e-9)
    half = stats.t.ppf(0.975, len(fit.sizes) - 2) * ref.stderr
    assert fit.ci == pytest.approx((ref.slope - half, ref.slope + half), rel=1e-9)
    assert fit.intercepts == pytest.approx((ref.intercept,), rel=1e-12)
    # two levels that see the same curve at two magnifications: counts N = C_i s^-D with
    # different C_i fit exactly with one slope; pooled without intercepts they would not.
    level = np.repeat([0, 1], 4)
    size = np.array([2, 4, 8, 16, 8, 16, 32, 64])
    count = np.where(level == 0, 1000.0, 90.0) * size**-1.3
    pooled = fa.pooled_fit(level, size, count)
    assert pooled.dimension == pytest.approx(1.3, abs=1e-12)
    assert pooled.residual == pytest.approx(0, abs=1e-12)
    assert np.polyfit(np.log(1 / size), np.log(count), 1)[0] != pytest.approx(1.3, abs=0.05)


def test_zoom_levels_share_one_slope():
    n = 128
    rows, cols = np.mgrid[:n, :n]
    a, b = grid_dataset(cols > rows), grid_dataset(cols > 0.5 * rows + 40)
    fit = gl.analysis.fractal_dimension([a, b])
    assert abs(fit.dimension - 1) < 0.05 and len(fit.per_level) == len(fit.intercepts) == 2
    assert set(fit.level.tolist()) == {0, 1}
    for level, one in enumerate((a, b)):
        assert fit.per_level[level] == pytest.approx(gl.analysis.fractal_dimension(one).dimension)


# -- the colour, the boundary point, the zoom ----------------------------------------------------
def test_convergence_measure_is_the_decades_fallen_or_the_speed_of_divergence():
    at = np.array([[[-1, -1], [4, 0]]])  # (optimizer, lr_mult_0, lr_mult_1)
    ds = dataset(at, {"lr_mult_0": [1.0, 10.0], "lr_mult_1": [1.0, 10.0]}, chains=("sgd",))
    losses = np.array([[8.0, 0.8, 0.08, 0.008, 0.0008], [1.0, 2.0, 0.5, 0.25, 4.0]])
    ds["loss"][0, 0, :, :] = losses
    ds["final_loss"][0, 0, :] = [0.00008, 8.0]
    q = gl.analysis.convergence_measure(ds).isel(optimizer=0).values
    decades = [(1 + 2 + 3 + 4 + 5) / 5, 0.0]  # the second run's losses fell -0.3+0.3+0.6-0.6-0.9
    assert q[0].tolist() == pytest.approx([-decades[0], -decades[1]])
    assert q[1].tolist() == pytest.approx([1 / 5, 1.0])  # diverged at steps 4 and 0


def test_boundary_point_lies_between_the_two_outcomes():
    outcome = np.zeros((40, 40), bool)
    outcome[:, 25:] = True  # diverged for lr_mult_1 beyond its 25th value
    ds = grid_dataset(outcome)
    point = gl.analysis.boundary_point(ds, near={"lr_mult_0": ds["lr_mult_0"].values[3]})
    ys = ds["lr_mult_1"].values
    assert point["lr_mult_1"] == pytest.approx(math.sqrt(ys[24] * ys[25]), rel=1e-12)
    xs = ds["lr_mult_0"].values
    assert math.sqrt(xs[2] * xs[3]) <= point["lr_mult_0"] <= math.sqrt(xs[3] * xs[4])
    with pytest.raises(ValueError, match="near"):
        gl.analysis.boundary_point(ds, near={"learning_rate": 1.0})
    with pytest.raises(ValueError, match="no boundary"):
        gl.analysis.boundary_point(grid_dataset(np.zeros((8, 8), bool)))


def fractal_spec(n: int = 8, steps: int = 20) -> gl.SweepSpec:
    """Sohl-Dickstein 2024's setup: 16 -> 16 -> 1, tanh, mean field, no biases, full-batch GD
    on 272 Gaussian examples, the two layers' learning rates as the grid."""
    model = gl.ModelSpec(
        hidden=(16,), activation="tanh", init="normal", use_bias=False, parametrization="mean_field"
    )
    rates = {"logspace": [0.0, 5.0, n]}  # each layer's learning rate (learning_rate 1)
    return gl.SweepSpec(
        model=model, data=gl.DataSpec(name="gaussian"), loss="mse", optimizers=("sgd",),
        grid={"learning_rate": [1.0], "lr_mult_0": rates, "lr_mult_1": rates}, steps=steps,
        batch_size=None,
        metrics=("none",), log_every=5,
    )  # fmt: skip


def test_zoom_spec_centres_a_finer_grid_of_the_same_size():
    spec = fractal_spec(n=9)
    zoomed = gl.analysis.zoom_spec(spec, {"lr_mult_0": 100.0}, 10)
    want = np.logspace(2 - 0.25, 2 + 0.25, 9)  # 5 decades / 10, centred on 10^2
    np.testing.assert_allclose(zoomed.grid["lr_mult_0"], want, rtol=1e-12)
    assert zoomed.grid["lr_mult_1"] == spec.grid["lr_mult_1"]
    assert zoomed.replace(grid=spec.grid) == spec  # nothing else changed
    linear = spec.replace(grid={"init_scale": {"linspace": [0.5, 2.5, 5]}})
    out = gl.analysis.zoom_spec(linear, {"init_scale": 1.0}, 4)
    np.testing.assert_allclose(out.grid["init_scale"], [0.75, 0.875, 1.0, 1.125, 1.25])


@pytest.mark.parametrize(
    "center, magnification, error, match",
    [
        ({"lr_mult_0": 10.0}, 0, ValueError, "magnification"),
        ({"lr_mult_0": 10.0}, "8", ValueError, "magnification"),
        ({"seed": 1}, 2, ValueError, "center.seed"),
        ({"lr_mult_0": 10.0}, 1e9, gl.ConfigError, "grid.lr_mult_0"),  # equal in float32
    ],
)
def test_zoom_spec_bad_input_names_the_field(center, magnification, error, match):
    with pytest.raises(error, match=match):
        gl.analysis.zoom_spec(fractal_spec(), center, magnification)


def test_a_sweep_zooms_in_a_few_lines():
    ds = gl.run(fractal_spec(n=8), progress=False)
    assert ds["diverged"].any() and not ds["diverged"].all()
    assert ds.nbytes < 8 * 8 * 100  # metrics="none", 4 logged steps: ~80 bytes a run
    # the Dataset's spec is rebuilt from its text: at magnification 1 about the centre of the
    # grid it is the spec that ran
    middle = {a: math.sqrt(ds[a].values[0] * ds[a].values[-1]) for a in ("lr_mult_0", "lr_mult_1")}
    same = gl.analysis.zoom_spec(ds, middle, 1)
    for axis in middle:
        np.testing.assert_allclose(same.grid[axis], fractal_spec(n=8).grid[axis], rtol=1e-12)
    # everything else is the spec that ran, full batch included (its TOML omits batch_size)
    assert same.replace(grid=fractal_spec(n=8).grid) == fractal_spec(n=8)
    point = gl.analysis.boundary_point(ds)
    zoomed = gl.run(gl.analysis.zoom_spec(ds, point, 4), progress=False)
    for axis, value in point.items():
        values = zoomed[axis].values
        assert values[0] < value < values[-1]
        assert math.log10(values[-1] / values[0]) == pytest.approx(5 / 4)
    with pytest.raises(ValueError, match="pass the SweepSpec"):
        arrays = fractal_spec().replace(data=gl.data.load("gaussian"))
        gl.analysis.zoom_spec(ds.assign_attrs(spec=arrays.toml), point, 2)


BAD_IMAGES = [
    ("axes", lambda ds: gl.analysis.fractal_dimension(ds, axes=["lr_mult_0"])),
    ("optimizer", lambda ds: gl.analysis.fractal_dimension(xr.concat([ds, ds], "optimizer"))),
    ("at least 3 box sides", lambda ds: gl.analysis.fractal_dimension(ds.isel(lr_mult_0=[0, 1]))),
    ("no point", lambda ds: gl.analysis.fractal_dimension(ds.assign(diverged=ds.diverged & 0))),
    ("finished", lambda ds: gl.analysis.fractal_dimension(ds.assign(finished=ds.diverged | 1 - 1))),
]


@pytest.mark.parametrize("match, call", BAD_IMAGES, ids=[m for m, _ in BAD_IMAGES])
def test_fractal_dimension_bad_input_is_named(match, call):
    rows, cols = np.mgrid[:64, :64]
    with pytest.raises(ValueError, match=match):
        call(grid_dataset(cols > rows))


# -- figures -------------------------------------------------------------------------------------
def test_rank_colours_keep_the_sign_and_spread_each_side():
    q = np.array([-3.0, -0.1, -7.0, 0.0, 0.9, 0.2, np.nan])
    c = gl.plots.fractal.rank_colours(q)
    assert c[:3].tolist() == [-0.625, -0.25, -1.0] and c[3] == 0
    assert c[4:6].tolist() == [1.0, 0.25] and np.isnan(c[6])
    ties = gl.plots.fractal.rank_colours(np.array([-1.0, -1.0, -2.0, 3.0, 3.0]))
    assert ties.tolist() == [-0.4375, -0.4375, -1.0, 0.625, 0.625]  # mean ranks 0.5, 0.5, 2


def test_the_image_and_its_zooms_are_drawn():
    rows, cols = np.mgrid[:64, :64]
    outer = grid_dataset(cols > rows)
    inner = outer.isel(lr_mult_0=slice(16, 48), lr_mult_1=slice(16, 48))
    fig = gl.plots.fractal_image(outer)
    fit = gl.analysis.fractal_dimension(outer)
    assert f"D = {fit.dimension:.2f} [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]" in fig.get_suptitle()
    image = fig.axes[0].collections[0].get_array().reshape(64, 64)  # [lr_mult_1, lr_mult_0]
    assert (np.sign(image) == np.where(outer["diverged"].values[0].T, 1, -1)).all()
    fig = gl.plots.fractal_zooms([outer, inner])
    first, second = fig.axes[:2]
    assert first.get_xscale() == "log" and len(first.patches) == 1 and not second.patches
    box = first.patches[0]
    x = inner["lr_mult_0"].values
    assert box.get_x() == pytest.approx(x[0] / math.sqrt(x[1] / x[0]), rel=1e-9)
    assert "x2" in second.get_title()  # half the decades of the first level
