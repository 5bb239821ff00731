"""The same numbers across refactorings: fixed sweeps against Datasets recorded at 2f84037.

The fixtures in ``tests/golden/`` were written by this file (``GRADLAB_RECORD_GOLDEN=1 pytest
tests/test_golden.py``) at commit 2f84037, before the engine was split into a package. Each sweep
here covers a part of the engine: several optimizer chains (plain, momentum, Adam, clipping by
global norm and by value, adaptive clipping, which keeps Flax's kernel layout, and
``apply_if_finite``), every curvature metric set, a custom Flax module, a static axis, a
schedule, ``log_every > 1``, per-seed batch orders, and runs that diverge. On CPU with the same
chunking the engine is deterministic, so the comparison is bit for bit (NaN equal to NaN).
Only the timing attrs and library versions may differ. ``curvature.nc`` was recorded again in
session 7, when groups that run Lanczos moved to one CPU device (``engine.platform.
program_devices``: the tests expose two): its runs are vmapped 6 instead of 3 to a program, and
three variables moved by float32 rounding (at most 5e-7 relative), every other one bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import gradlab as gl

GOLDEN = Path(__file__).parent / "golden"
RECORD = os.environ.get("GRADLAB_RECORD_GOLDEN") == "1"
VOLATILE_ATTRS = ("wall_time_s", "compile_time_s")


class TinyNet(nn.Module):
    """A user's module: two dense layers with the signals gradlab reads (sow and perturb)."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(6, name="dense_0")(x)
        h = self.perturb("h_0", h)
        self.sow("intermediates", "h_0", h)
        x = jnp.tanh(h)
        h = nn.Dense(3, name="dense_1")(x)
        h = self.perturb("h_1", h)
        self.sow("intermediates", "h_1", h)
        return h


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96 + 40, 10)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(10, 3)), axis=1).astype(np.int32)
    return gl.data.from_arrays(x[:96], y[:96], x[96:], y[96:])


def _specs():
    data = _data()
    return {
        "chains": gl.SweepSpec(
            model=gl.ModelSpec(hidden=(8, 8), activation="tanh"),
            data=data,
            optimizers=(
                "sgd",
                "momentum",
                "adam",
                "clip_by_global_norm|adam",
                "clip|sgd",
                "adaptive_grad_clip|sgd",
                "apply_if_finite|sgd",
            ),
            grid={
                "seed": [0, 1],
                "learning_rate": [0.03, 0.5, 60.0],
                "init_scale": [1.0, 3.0],
                "clip_norm": [1.0],
            },
            steps=14,
            batch_size=16,
        ),
        "curvature": gl.SweepSpec(
            model=gl.ModelSpec(hidden=(8,), activation="relu"),
            data=data,
            optimizers=("sgd", "adam"),
            grid={"seed": [0, 1], "learning_rate": [0.05, 2.0], "activation": ["relu", "tanh"]},
            steps=9,
            batch_size=None,
            metrics=("default", "sharpness", "precond_sharpness", "hessian_trace", "per_example"),
            sharpness_every=2,
            sharpness_iters=6,
            schedule="cosine",
        ),
        "module": gl.SweepSpec(
            model=TinyNet(),
            data=data,
            optimizers=("sgd", "momentum"),
            grid={"seed": [0, 1, 2], "learning_rate": [0.1, 40.0], "bias_std": [0.0, 0.5]},
            steps=10,
            batch_size=24,
            log_every=3,
            batch_order="per_seed",
            divergence_factor=5.0,
        ),
    }


SPECS = _specs()


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


# The module sweep runs in the inner loop; the two larger ones (10 s each) with the slow tests.
SLOW = ("chains", "curvature")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(SPECS)]
)
def test_sweep_matches_the_recorded_dataset(name):
    ds = gl.run(SPECS[name], chunk_size=6, progress=False)
    path = GOLDEN / f"{name}.nc"
    if RECORD:
        GOLDEN.mkdir(exist_ok=True)
        ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as ref:
        ref = ref.load()
    assert sorted(ds.data_vars) == sorted(ref.data_vars)
    assert dict(ds.sizes) == dict(ref.sizes)
    for coord in ref.coords:
        assert _equal(ds[coord].values, ref[coord].values), coord
    for var in ref.data_vars:
        assert ds[var].dims == ref[var].dims, var
        assert ds[var].dtype == ref[var].dtype, var
        assert _equal(ds[var].values, ref[var].values), var
    assert ds.attrs["spec"] == ref.attrs["spec"]
    assert ds.attrs["devices"] == ref.attrs["devices"]
    # The fixture must exercise what it claims: divergence, curvature and layers.
    assert bool(ref["diverged"].any()) and not bool(ref["diverged"].all())
    assert set(ds.attrs) - set(VOLATILE_ATTRS) >= {"spec", "devices"}
