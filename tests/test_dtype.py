"""Precision as a grid axis: float64 programs compute in float64, bfloat16 programs compute in
bfloat16 from float32 state, and the process stays in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import gradlab as gl


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 2)) + 0.1 * rng.normal(size=(64, 2))).astype(np.float32)
    return gl.data.from_arrays(x, y)


def _spec(data, lr, dtypes, steps, hidden=(), **kwargs):
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=hidden, use_bias=False, activation="tanh"),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0, 1], "dtype": dtypes, "learning_rate": [lr]},
        steps=steps,
        batch_size=None,
        **kwargs,
    )


@pytest.fixture(scope="module")
def whitened():
    """Inputs with E[x xᵀ] = I and zero targets: the loss of a linear model is ½‖W‖², its
    gradient W, and gradient descent shrinks every weight by the factor 1 − η per step."""
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(64, 5)))
    return gl.data.from_arrays((8 * q).astype(np.float32), np.zeros((64, 2), np.float32))


def test_float64_programs_compute_in_float64(whitened):
    """A relative step of η = 1e-8 is below float32's resolution (2^-24 ≈ 6e-8, half an ulp at
    least 3e-8): a float32 program cannot move, a float64 program shrinks the loss by the factor
    (1 − η)^(2t), the closed form."""
    ds = gl.run(_spec(whitened, 1e-8, ["float32", "float64"], 1000), progress=False)
    loss = ds["loss"].sel(optimizer="sgd").isel(learning_rate=0)
    first, last = loss.isel(step=0), loss.isel(step=-1)
    assert (last.sel(dtype="float32") == first.sel(dtype="float32")).all()  # stuck
    expected = first.sel(dtype="float64") * (1 - 1e-8) ** (2 * 999)  # step 999's loss
    np.testing.assert_allclose(last.sel(dtype="float64"), expected, rtol=2e-7)
    # both start from the same θ_0: the first losses agree to float32 rounding
    np.testing.assert_allclose(first.sel(dtype="float64"), first.sel(dtype="float32"), rtol=1e-6)
    assert not jax.config.jax_enable_x64  # the process stayed in 32-bit mode
    assert jnp.zeros(1).dtype == jnp.float32


def test_bfloat16_programs_compute_in_bfloat16_from_float32_state(data):
    """Steps of about 1e-4 relative are below bfloat16's resolution (2^-9): parameters held in
    bfloat16 could not move. Mixed precision keeps them in float32, so they do, while the
    forward pass rounds like bfloat16."""
    spec = _spec(data, 1e-4, ["float32", "bfloat16"], 200, hidden=(16,))
    ds = gl.run(spec, progress=False).sel(optimizer="sgd").isel(learning_rate=0)
    bf16 = ds.sel(dtype="bfloat16")
    ratio = bf16["update_ratio_layer"].isel(step=0)
    assert (ratio < 2.0**-10).all()  # each step is far below bfloat16's resolution
    norms = bf16["param_norm_layer"]
    assert (norms.isel(step=-1) != norms.isel(step=0)).all()  # float32 state moves
    f32 = ds.sel(dtype="float32")["loss"].isel(step=0)
    rel = np.abs(bf16["loss"].isel(step=0) - f32) / f32
    assert (rel > 1e-5).all() and (rel < 2e-2).all()  # bfloat16 rounding, not another model
    assert bf16["loss"].dtype == np.float32


def test_precision_flips_finds_verdicts_that_change(data):
    diverged = xr.DataArray(
        [[[True, True], [False, True], [False, False]]],
        dims=("optimizer", "learning_rate", "dtype"),
        coords={"optimizer": ["sgd"], "learning_rate": [1.0, 2.0, 3.0], "dtype": ["a", "b"]},
    )
    ds = xr.Dataset({"diverged": diverged, "diverged_at": diverged.astype(np.int32) - 1})
    flips = gl.analysis.precision_flips(ds)
    assert flips.sel(optimizer="sgd").values.tolist() == [False, True, False]


def test_bad_dtypes_are_refused(data):
    with pytest.raises(gl.ConfigError, match=r"^grid.dtype: unknown dtype 'float16'"):
        _spec(data, 0.1, ["float16"], 2)
    spec = _spec(data, 0.1, ["float64"], 2)
    with pytest.raises(gl.ConfigError, match=r"^grid.dtype: TPUs have no float64"):
        gl.make_plan(spec, data, platform="tpu")


@pytest.mark.slow  # two 32 x 32 fractal images: about 10 s
def test_the_fractal_boundary_in_float32_and_float64():
    """Sohl-Dickstein 2024's boundary (the benchmark's window) at two precisions: the verdicts
    agree away from the boundary, and every run whose verdict flips is a boundary run."""
    model = gl.ModelSpec(
        hidden=(16,), activation="tanh", init="normal", use_bias=False, parametrization="mean_field"
    )
    n = 32
    spec = gl.SweepSpec(
        model=model, data=gl.DataSpec(name="gaussian"), loss="mse", optimizers=("sgd",),
        grid={
            "learning_rate": [1.0], "dtype": ["float32", "float64"],
            "lr_mult_0": {"logspace": [4.8, 5.6, n]}, "lr_mult_1": {"logspace": [1.85, 2.25, n]},
        },
        steps=200, batch_size=None, metrics=("none",), log_every=20,
    )  # fmt: skip
    ds = gl.run(spec, progress=False).squeeze(drop=True)
    flips = gl.analysis.precision_flips(ds).values
    d32 = ds["diverged"].sel(dtype="float32").values
    assert 0.2 < d32.mean() < 0.8  # the window holds the boundary
    edge = np.zeros_like(d32)
    for axis in (0, 1):  # a run with a 4-neighbour of the other outcome
        differs = np.diff(d32, axis=axis) != 0
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lo)] |= differs
        edge[tuple(hi)] |= differs
    assert flips.mean() < 0.02
    assert not (flips & ~edge).any(), np.argwhere(flips & ~edge)
