"""The default metrics: by hand from the reference forward pass; finiteness against numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import (
    N_TRAIN,
    make_spec,
    norm,
    reference_batches,
    reference_forward,
    reference_loss,
    reference_params,
    reference_train,
    small_dataset,
)

import gradlab as gl
from gradlab import metrics as M


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_sgd_metrics_against_hand_computation(dataset):
    spec = make_spec(dataset, optimizers=("sgd",), grid={"seed": [3], "learning_rate": [0.05]})
    ds = gl.run(spec, progress=False).sel(optimizer="sgd", seed=3, learning_rate=0.05)
    # update_norm == lr * grad_norm for plain SGD; grad_norm² == Σ grad_norm_layer².
    np.testing.assert_allclose(ds.update_norm, 0.05 * ds.grad_norm, rtol=1e-5)
    np.testing.assert_allclose(ds.grad_norm**2, (ds.grad_norm_layer**2).sum("layer"), rtol=1e-5)
    np.testing.assert_allclose(
        ds.update_ratio_layer, 0.05 * ds.grad_norm_layer / ds.param_norm_layer, rtol=1e-4
    )
    # Step 0 by hand: gradient, per-layer signals and δ = ∂L/∂h from the written-out forward.
    params = reference_params(spec, 3)
    idx = reference_batches(N_TRAIN, 16, 1)[0]
    x, y = dataset.x_train[idx], dataset.y_train[idx]
    grads = jax.grad(reference_loss)(params, x, y)
    step0 = ds.isel(step=0)
    np.testing.assert_allclose(step0.grad_norm, norm(grads), rtol=1e-5)
    grad_max = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads))
    np.testing.assert_allclose(step0.grad_max_abs, grad_max, rtol=1e-5)
    _, preacts = reference_forward(params, x, jnp.tanh)
    np.testing.assert_allclose(
        step0.act_rms_layer, [jnp.sqrt(jnp.mean(h**2)) for h in preacts], rtol=1e-5
    )

    def loss_from(zs):  # the loss as a function of additive offsets to each pre-activation
        names = sorted(params, key=lambda n: int(n.split("_")[1]))
        h = x
        for i, name in enumerate(names):
            h = h @ params[name]["kernel"] + params[name]["bias"][None, :] + zs[i]
            h = jnp.tanh(h) if i < len(names) - 1 else h
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1))

    deltas = jax.grad(loss_from)([jnp.zeros_like(h) for h in preacts])
    np.testing.assert_allclose(
        step0.delta_rms_layer, [jnp.sqrt(jnp.mean(d**2)) for d in deltas], rtol=1e-4
    )
    logits, _ = reference_forward(params, x, jnp.tanh)
    np.testing.assert_allclose(step0.accuracy, np.mean(np.argmax(logits, 1) == y), rtol=1e-6)


def test_param_and_update_norms_against_hand_loop(dataset):
    # θ_t's layer norms and ‖θ_{t+1} − θ_t‖ at every recorded step, also when the steps between
    # records only train (log_every=3: the norms of θ_t are carried across those steps).
    spec = make_spec(dataset, grid={"seed": [0], "learning_rate": [3e-2]})
    history = {}
    reference_train(spec, dataset, optax.adam(3e-2), 0, history=history)
    layers = sorted(history["params"][0], key=lambda n: int(n.split("_")[1]))
    param_norms = np.array([[norm(p[n]) for n in layers] for p in history["params"]])
    update_norms = np.array([norm(u) for u in history["updates"]])
    for log_every in (1, 3):
        ds = gl.run(spec.replace(log_every=log_every), progress=False)
        ds = ds.sel(optimizer="adam", seed=0, learning_rate=3e-2)
        steps = ds.step.values
        np.testing.assert_allclose(ds.param_norm_layer, param_norms[steps], rtol=1e-5)
        np.testing.assert_allclose(ds.update_norm, update_norms[steps], rtol=1e-4)


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([1.0, -2.0], True),
        ([3e38, -3e38], True),  # huge but finite: a sum of squares would overflow
        ([1.0, np.inf], False),
        ([-np.inf, 0.0], False),
        ([np.nan, 1.0], False),
    ],
)
def test_tree_all_finite(values, finite):
    tree = {"a": jnp.ones((2, 3)), "b": {"c": jnp.asarray(values, jnp.float32)}}
    assert bool(jax.jit(M.tree_all_finite)(tree)) is finite
    batched = jax.tree.map(lambda x: jnp.stack([jnp.ones_like(x), x]), tree)
    assert jax.vmap(M.tree_all_finite)(batched).tolist() == [True, finite]


def test_nan_and_inf_in_layer_sized_arrays_are_found():
    # Leaves the size of the article MLP's first kernel, vmapped over runs as in the engine,
    # with one NaN or inf per run somewhere inside: XLA's CPU max reduction skips such NaNs
    # (openxla/xla#21461), so a finiteness check by max |x| missed every one of them.
    runs, rng = 32, np.random.default_rng(0)
    kernel = rng.normal(size=(runs, 10, 784)).astype(np.float32)
    bias = rng.normal(size=(runs, 10)).astype(np.float32)
    for r in range(runs):
        kernel[r, rng.integers(10), rng.integers(784)] = [np.nan, np.inf, -np.inf, 1.0][r % 4]
        if r % 8 == 1:  # an infinity and a NaN
            kernel[r, rng.integers(10), rng.integers(784)] = np.nan
    tree = {"layer_0": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}
    finite = jax.jit(jax.vmap(M.tree_all_finite))(tree)
    largest = jax.jit(jax.vmap(M.tree_max_abs))(tree)
    # As the engine calls it at a recorded step, with the per-layer Σ x² it has anyway.
    sums = jax.vmap(lambda t: M.layer_sums_of_squares(t, ["layer_0"]))(tree)
    largest_from_sums = jax.jit(jax.vmap(M.tree_max_abs))(tree, sums)
    for r in range(runs):
        values = np.concatenate([kernel[r].ravel(), bias[r]])
        assert bool(finite[r]) == bool(np.isfinite(values).all()), r
        assert bool(np.isfinite(largest[r])) == bool(np.isfinite(values).all()), r
        np.testing.assert_equal(float(largest[r]), np.max(np.abs(values)))
        np.testing.assert_equal(float(largest_from_sums[r]), np.max(np.abs(values)))
