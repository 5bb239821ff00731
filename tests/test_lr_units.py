"""Learning rates in units of the initial sharpness: η = c/λ₀, against a quadratic's closed form.

A linear model with MSE loss, ½·mean‖Wx + b − y‖², is a quadratic whose Hessian (per output)
is E[x̃x̃ᵀ], x̃ = (x, 1): its top eigenvalue λ₀ is known in closed form, and full-batch gradient
descent at η = c/λ₀ converges for c < 2 and diverges for c > 2.
"""

from __future__ import annotations

import re

import numpy as np
import optax
import pytest

import gradlab as gl


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32) * np.float32([3, 1, 1, 0.5, 0.2])
    y = rng.normal(size=(64, 2)).astype(np.float32)
    return gl.data.from_arrays(x, y)


def lambda0(data) -> float:
    x = np.concatenate([data.x_train, np.ones((len(data.x_train), 1))], 1).astype(np.float64)
    return float(np.linalg.eigvalsh(x.T @ x / len(x)).max())


def quadratic(data, lrs, units="sharpness", steps=200):
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=()),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0, 1], "learning_rate": lrs},
        lr_units=units,
        steps=steps,
        batch_size=None,
        sharpness_iters=30,
        metrics=["none"],
    )


def test_gd_in_units_of_sharpness_is_stable_exactly_below_two(data):
    ds = gl.run(quadratic(data, [1.0, 1.9, 2.1], steps=2000), progress=False).sel(optimizer="sgd")
    np.testing.assert_allclose(ds["initial_sharpness"].values, lambda0(data), rtol=1e-5)
    assert ds.attrs["lr_units"] == "sharpness"
    assert not ds["diverged"].sel(learning_rate=[1.0, 1.9]).any()
    assert ds["diverged"].sel(learning_rate=2.1).all()
    # below 2 the runs reach the least-squares minimum
    x = np.concatenate([data.x_train, np.ones((64, 1), np.float32)], 1).astype(np.float64)
    w, *_ = np.linalg.lstsq(x, data.y_train.astype(np.float64), rcond=None)
    best = 0.5 * np.mean(np.sum((x @ w - data.y_train) ** 2, axis=1))
    np.testing.assert_allclose(ds["final_loss"].sel(learning_rate=1.0).values, best, rtol=1e-4)


def test_the_run_trains_at_c_over_lambda0(data):
    c = 0.7
    scaled = gl.run(quadratic(data, [c], steps=20), progress=False)
    eta = float(np.float32(c) / np.float32(scaled["initial_sharpness"].values.flat[0]))
    spec = quadratic(data, [eta], units="absolute", steps=20)
    absolute = gl.run(spec.replace(metrics=("none", "initial_sharpness")), progress=False)
    np.testing.assert_allclose(scaled["loss"].values, absolute["loss"].values, rtol=1e-5)
    # the set measures λ₀ in absolute units too, without changing the learning rate
    np.testing.assert_array_equal(
        absolute["initial_sharpness"].values, scaled["initial_sharpness"].values
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lr_units": "per_sharpness"}, "lr_units"),
        ({"grid": {"seed": [0]}}, "lr_units"),
        ({"optimizers": (lambda hp: optax.sgd(0.1),)}, "optimizers[0]"),
    ],
)
def test_bad_lr_units_are_refused_naming_the_field(data, changes, field, tmp_path):
    with pytest.raises(gl.ConfigError, match="^" + re.escape(field)):
        quadratic(data, [1.0]).replace(**changes)


def test_lr_units_in_toml(data):
    spec = gl.from_toml('lr_units = "sharpness"\nsteps = 3\n[grid]\nlearning_rate = [1.0]\n')
    assert spec.lr_units == "sharpness" and "initial_sharpness" in spec.metrics
    assert 'lr_units = "sharpness"' in gl.to_toml(spec)
    assert "lr_units" not in gl.to_toml(spec.replace(lr_units="absolute"))  # the default


def test_lanczos_sweeps_on_two_cpu_devices_finish(tmp_path):
    """XLA:CPU has deadlocked running Lanczos under shard_map on two host devices (12 runs,
    20 Lanczos steps); such groups run on one device (engine.platform.program_devices). In a
    subprocess with a time limit, so a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    code = """
import jax
jax.config.update("jax_num_cpu_devices", 2)
import numpy as np, gradlab as gl
data = gl.DataSpec(name="teacher", n_train=64, options={"task": "regression"})
spec = gl.SweepSpec(model=gl.ModelSpec(hidden=(16,)), data=data, loss="mse",
    grid={"seed": [0, 1], "learning_rate": list(np.linspace(0.1, 0.6, 6))},
    metrics=["none", "sharpness", "initial_sharpness"], steps=5, batch_size=None)
ds = gl.run(spec, progress=False)
print(int(np.isfinite(ds["initial_sharpness"].values).sum()))
"""
    env = {**__import__("os").environ, "GRADLAB_DATA": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "12"
