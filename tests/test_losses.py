"""The training losses against their formulas, and the z-loss against a hand-written loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree
from reference import (
    CLASSES,
    N_TRAIN,
    make_spec,
    reference_batches,
    reference_forward,
    reference_loss,
    reference_params,
    reference_train,
    small_dataset,
)

import gradlab as gl
from gradlab import losses


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_mse_loss_is_half_squared_error_on_one_hot(dataset):
    spec = make_spec(
        dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [1e-9]}, loss="mse"
    )
    ds = gl.run(spec, progress=False).sel(optimizer="sgd", seed=0, learning_rate=1e-9)
    params = reference_params(spec, 0)
    idx = reference_batches(N_TRAIN, 16, 1)[0]
    logits, _ = reference_forward(params, dataset.x_train[idx], jnp.tanh)
    onehot = np.eye(CLASSES)[dataset.y_train[idx]]
    expected = np.mean(0.5 * np.sum((np.asarray(logits) - onehot) ** 2, axis=1))
    np.testing.assert_allclose(ds.loss.isel(step=0), expected, rtol=1e-5)


def test_objective_adds_palms_z_loss_to_the_cross_entropy():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(5, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=5).astype(np.int32)
    x64 = logits.astype(np.float64)
    log_z = np.log(np.sum(np.exp(x64), axis=1))  # by hand, in float64
    ce = log_z - x64[np.arange(5), y]
    for z in (0.0, 1e-4, 0.5):
        got = losses.objective("cross_entropy", jnp.asarray(logits), jnp.asarray(y), z)
        np.testing.assert_allclose(got, ce + z * log_z**2, rtol=1e-5)
    plain = losses.objective("cross_entropy", jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(plain, ce, rtol=1e-5)
    with pytest.raises(ValueError, match="softmax"):
        losses.objective("mse", jnp.asarray(logits), jnp.asarray(y), 0.1)


def test_z_loss_axis_trains_the_objective_and_reports_the_cross_entropy(dataset):
    z_values = [0.0, 0.1, 1.0]
    spec = make_spec(
        dataset,
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [0.5], "z_loss": z_values},
        steps=8,
    )
    ds = gl.run(spec, progress=False).sel(optimizer="sgd", seed=0, learning_rate=0.5)
    assert "reads_z_loss" not in ds.coords  # read by every chain, like init_scale
    for z in z_values:
        history = {}
        expected, _, _ = reference_train(
            spec, dataset, optax.sgd(0.5), 0, history=history, z_loss=z
        )
        got = ds.sel(z_loss=z)
        np.testing.assert_allclose(got.loss.values, expected, rtol=1e-5, err_msg=f"z = {z}")
        # final and test losses: the cross-entropy alone, at the trained parameters
        final = reference_loss(history["final"], dataset.x_train, dataset.y_train)
        test = reference_loss(history["final"], dataset.x_test, dataset.y_test)
        np.testing.assert_allclose(got.final_loss, final, rtol=1e-5, err_msg=f"z = {z}")
        np.testing.assert_allclose(got.test_loss, test, rtol=1e-5, err_msg=f"z = {z}")
    # the z-term is in the recorded objective: at step 0 (same parameters) it adds z·(log Z)²
    logits, _ = reference_forward(
        reference_params(spec, 0), dataset.x_train[reference_batches(N_TRAIN, 16, 1)[0]], jnp.tanh
    )
    term = np.mean(np.square(np.log(np.sum(np.exp(np.asarray(logits, np.float64)), axis=1))))
    np.testing.assert_allclose(
        ds.loss.sel(z_loss=1.0, step=0) - ds.loss.sel(z_loss=0.0, step=0), term, rtol=1e-4
    )


def test_z_loss_is_refused_with_mse_and_below_zero(dataset):
    with pytest.raises(gl.ConfigError, match=r"grid\.z_loss.*softmax"):
        make_spec(dataset, grid={"learning_rate": [0.1], "z_loss": [1e-4]}, loss="mse")
    with pytest.raises(gl.ConfigError, match=r"grid\.z_loss.*>= 0"):
        make_spec(dataset, grid={"learning_rate": [0.1], "z_loss": [-1e-4]})


@pytest.mark.slow  # a dense Hessian per z
def test_sharpness_is_that_of_the_objective_with_its_z_term(dataset):
    """The curvature sets measure the Hessian of what the optimizer minimises: with the z-term."""
    spec = make_spec(
        dataset,
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [1e-3], "z_loss": [0.0, 1.0]},
        steps=1,
        metrics=("none", "sharpness"),
        sharpness_iters=40,
    )
    ds = gl.run(spec, progress=False).sel(optimizer="sgd", seed=0, learning_rate=1e-3, step=0)
    params = reference_params(spec, 0)
    flat, unravel = ravel_pytree(params)
    idx = reference_batches(N_TRAIN, 16, 1)[0]
    x, y = dataset.x_train[idx], dataset.y_train[idx]
    tops = []
    dense = jax.jit(  # compiled, not op by op: a 203 x 203 Hessian
        jax.hessian(lambda f, z: reference_loss(unravel(f), x, y, z_loss=z)), static_argnums=1
    )
    for z in (0.0, 1.0):
        hessian = dense(flat, z)
        tops.append(np.linalg.eigvalsh(np.asarray(hessian, np.float64))[-1])
        np.testing.assert_allclose(ds.sharpness.sel(z_loss=z), tops[-1], rtol=1e-3)
    assert abs(tops[1] - tops[0]) > 0.05 * tops[0]  # the z-term changes the curvature
