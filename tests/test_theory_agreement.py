"""Sweep measurements against theory: dense Hessians, the 2/η bound, mean-field χ1.

Every expected value here is computed independently of the engine: closed forms, dense
``jax.hessian`` eigenvalues, or gradlab.theory's Gaussian integrals.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import gradlab as gl
from gradlab import models


@pytest.fixture(scope="module")
def regression():
    """A linear regression problem: its MSE loss is an exact quadratic in the parameters."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2])
    y = x @ rng.normal(size=(5, 2)) + 0.1 * rng.normal(size=(64, 2))
    return gl.data.from_arrays(x.astype(np.float32), y.astype(np.float32))


def quadratic_lambda_max(data) -> float:
    """For f(x) = Wx + b and ½‖f − y‖² averaged, the Hessian is E[x̃x̃ᵀ] ⊗ I, x̃ = (x, 1)."""
    xt = np.concatenate([data.x_train, np.ones((len(data.x_train), 1))], axis=1)
    return float(np.linalg.eigvalsh(xt.T @ xt / len(xt)).max())


def linear_spec(data, optimizers, lrs, **kwargs):
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(), activation="linear"),
        data=data,
        loss="mse",
        optimizers=optimizers,
        grid={"learning_rate": list(lrs), **kwargs.pop("grid", {})},
        batch_size=None,
        **kwargs,
    )


def test_sharpness_of_a_quadratic_and_the_2_over_eta_edge(regression):
    lam = quadratic_lambda_max(regression)
    edge = 2 / lam
    spec = linear_spec(
        regression,
        ("sgd",),
        [0.9 * edge, 0.99 * edge, 1.01 * edge, 1.1 * edge],
        steps=400,
        metrics=("default", "sharpness"),
        sharpness_every=50,
    )
    ds = gl.run(spec, progress=False).sel(optimizer="sgd")
    measured = ds.sharpness.isel(step=0).values
    np.testing.assert_allclose(measured, lam, rtol=1e-4)
    np.testing.assert_allclose(ds.sharpness_bound.isel(step=0), 2 / ds.learning_rate, rtol=1e-6)
    # GD on a quadratic diverges iff η > 2/λ_max.
    assert list(ds.diverged.values) == [False, False, True, True]


def test_heavy_ball_edge_is_2_plus_2beta_over_eta(regression):
    lam, beta = quadratic_lambda_max(regression), 0.5
    edge = (2 + 2 * beta) / lam
    spec = linear_spec(
        regression,
        ("momentum",),
        [0.95 * edge, 1.05 * edge],
        grid={"momentum": [beta]},
        steps=400,
    )
    ds = gl.run(spec, progress=False)
    assert list(ds.diverged.values.ravel()) == [False, True]


def tiny_problem():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 4)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)
    return gl.data.from_arrays(x, y)


def flat_loss(data, params, activation="tanh"):
    """The full-batch cross-entropy as a function of the flattened parameters, and θ flat."""
    flat, unravel = ravel_pytree(params)
    module = models.make_model(gl.ModelSpec(hidden=(3,), activation=activation), 2)

    def loss(v):
        logits = module.apply({"params": unravel(v)}, jnp.asarray(data.x_train))
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(data.y_train)[:, None], axis=1))

    return loss, flat


def dense_hessian(data, params):
    loss, flat = flat_loss(data, params)
    return np.asarray(jax.jit(jax.hessian(loss))(flat), np.float64)  # compiled, not op by op


def full_batch_grad(data, params):
    loss, flat = flat_loss(data, params)
    return np.asarray(jax.grad(loss)(flat), np.float64)


@pytest.mark.slow  # dense Hessians
def test_sharpness_trace_and_precond_sharpness_of_a_small_net_match_dense():
    data = tiny_problem()
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(3,), activation="tanh"),
        data=data,
        optimizers=("adam",),
        grid={"seed": [0, 1], "learning_rate": [1e-9], "init_scale": [3.0]},
        steps=2,
        batch_size=None,
        metrics=("default", "sharpness", "precond_sharpness", "hessian_trace"),
        sharpness_every=1,
        sharpness_iters=40,
    )
    ds = gl.run(spec, progress=False).sel(optimizer="adam", learning_rate=1e-9, init_scale=3.0)
    for seed in (0, 1):
        module = models.make_model(spec.model, 2)
        params = models.init_params(module, jax.random.PRNGKey(seed), jnp.zeros((24, 4)), 3.0)
        h = dense_hessian(data, params)  # lr 1e-9: θ_1 = θ_0 to float32 precision
        eig = np.linalg.eigvalsh(h)
        assert eig.min() < 0  # an indefinite Hessian: λ_max is not the largest magnitude
        np.testing.assert_allclose(ds.sharpness.sel(seed=seed), eig.max(), rtol=2e-3)
        # Hutchinson with 10 Rademacher probes: unbiased, variance 2(‖H‖_F² − Σ H_ii²)/10.
        sd = np.sqrt(2 * (np.sum(h**2) - np.sum(np.diag(h) ** 2)) / 10)
        assert abs(float(ds.hessian_trace.sel(seed=seed).isel(step=0)) - np.trace(h)) < 4 * sd
        # The preconditioner of step t is Adam's after t+1 updates with (here) a constant g:
        # ν̂ = g², so P = (1-β1^(t+1))(|g| + ε): 0.1(|g| + ε) at step 0, 0.19(|g| + ε) at step 1.
        g = full_batch_grad(data, params)
        for step, factor in ((0, 0.1), (1, 0.19)):
            p = factor * (np.abs(g) + 1e-8)
            pre = np.linalg.eigvals(np.diag(1 / p) @ h).real.max()
            measured = ds.precond_sharpness.sel(seed=seed).isel(step=step)
            np.testing.assert_allclose(measured, pre, rtol=1e-2)
        np.testing.assert_allclose(ds.sharpness_bound.sel(seed=seed), 38 / 1e-9, rtol=1e-5)


def test_per_example_gradient_statistics_match_numpy():
    data = tiny_problem()
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(3,), activation="tanh"),
        data=data,
        optimizers=("sgd",),
        grid={"seed": [0]},
        steps=1,
        batch_size=None,
        metrics=("default", "per_example"),
    )
    ds = gl.run(spec, progress=False).isel(optimizer=0, seed=0, step=0)
    module = models.make_model(spec.model, 2)
    params = models.init_params(module, jax.random.PRNGKey(0), jnp.zeros((24, 4)))
    flat, unravel = ravel_pytree(params)

    def example_loss(v, x, y):
        logits = module.apply({"params": unravel(v)}, x[None])[0]
        return -jax.nn.log_softmax(logits)[y]

    g = np.asarray(
        jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))(
            flat, jnp.asarray(data.x_train), jnp.asarray(data.y_train)
        ),
        np.float64,
    )
    b = len(g)
    mean = g.mean(0)
    tr_sigma = np.sum((g - mean) ** 2) / (b - 1)
    g2 = np.sum(mean**2) - tr_sigma / b  # unbiased |G|² (McCandlish et al. 2018)
    np.testing.assert_allclose(ds.grad_noise_scale, tr_sigma / g2, rtol=1e-3)
    var = g.var(0, ddof=1)
    keep = var > 0
    np.testing.assert_allclose(ds.grad_snr, np.mean(mean[keep] ** 2 / var[keep]), rtol=1e-3)


@pytest.mark.slow
def test_empirical_chi1_of_deep_tanh_nets_matches_mean_field():
    depth, width, sigma_b2 = 24, 512, 0.05
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, width)).astype(np.float32)
    y = rng.integers(0, 10, size=64).astype(np.int32)
    sigma_w2 = [1.0, 1.761, 2.5]  # ordered, critical, chaotic (Poole et al. 2016)
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(width,) * depth, activation="tanh", init="normal"),
        data=gl.data.from_arrays(x, y),
        loss="mse",
        optimizers=("sgd",),
        grid={
            "seed": [0, 1],
            "init_scale": [float(np.sqrt(s)) for s in sigma_w2],
            "bias_std": [float(np.sqrt(sigma_b2))],
        },
        steps=1,
        batch_size=None,
    )
    ds = gl.run(spec, progress=False).isel(optimizer=0, step=0, bias_std=0)
    delta = ds.delta_rms_layer.values  # [seed, init_scale, layer]
    # Hidden layer l (0-based) to l-1 for l = 8..23: q has reached q*; the readout is excluded.
    ratios = (delta[..., 7 : depth - 1] / delta[..., 8:depth]) ** 2
    measured = np.exp(np.log(ratios).mean(axis=(0, 2)))
    expected = [gl.theory.chi1("tanh", s, sigma_b2) for s in sigma_w2]
    np.testing.assert_allclose(measured, expected, rtol=0.04)
    assert measured[0] < 1 < measured[2]
    he = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(width,) * depth, activation="relu", init="he_normal"),
        data=gl.data.from_arrays(x, y),
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0, 1]},
        steps=1,
        batch_size=None,
    )
    relu = gl.run(he, progress=False).isel(optimizer=0, step=0).delta_rms_layer.values
    ratio = np.exp(np.mean(np.log((relu[:, 7 : depth - 1] / relu[:, 8:depth]) ** 2)))
    np.testing.assert_allclose(ratio, 1.0, rtol=0.05)  # He init is critical: χ1 = σ_w²/2 = 1
