"""The sweep engine against hand-written training loops (the independent reference).

The reference below shares nothing with the engine but the parameter initialiser (tested on its
own in test_models.py): its forward pass, loss, batch order, optimizer loop and divergence rule
are written out here with jnp and optax directly.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradlab as gl
from gradlab import metrics as M
from gradlab import models, optim

N_TRAIN, N_TEST, D_IN, CLASSES = 96, 32, 12, 3
HIDDEN = (8, 8)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN + N_TEST, D_IN)).astype(np.float32)
    w = rng.normal(size=(D_IN, CLASSES))
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    return gl.data.from_arrays(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:])


def make_spec(dataset, optimizers=("adam",), grid=None, steps=12, **kwargs):
    grid = grid if grid is not None else {"seed": [0, 1], "learning_rate": [1e-2, 3e-2]}
    kwargs.setdefault("model", gl.ModelSpec(hidden=HIDDEN, activation="tanh"))
    return gl.SweepSpec(
        data=dataset, optimizers=optimizers, grid=grid, steps=steps, batch_size=16, **kwargs
    )


# -- the independent reference ----------------------------------------------------------------
def reference_params(spec, seed, init_scale=1.0, bias_std=0.0):
    module = models.make_model(spec.model, CLASSES)
    return models.init_params(
        module, jax.random.PRNGKey(seed), jnp.zeros((16, D_IN)), init_scale, bias_std
    )


def reference_forward(params, x, activation):
    """Returns logits and the list of pre-activations, written out by hand."""
    names = sorted(params, key=lambda n: int(n.split("_")[1]))
    preacts = []
    for i, name in enumerate(names):
        h = x @ params[name]["kernel"] + params[name]["bias"][None, :]
        preacts.append(h)
        x = activation(h) if i < len(names) - 1 else h
    return x, preacts


def reference_loss(params, x, y, activation=jnp.tanh):
    logits, _ = reference_forward(params, x, activation)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def norm(tree):
    """Global L2 norm, in float64 numpy."""
    return np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)))


def reference_batches(n, batch, steps, seed=0):
    """The documented shared batch order: epoch e permutes with default_rng([seed, e])."""
    out = []
    for e in range(math.ceil(steps / (n // batch))):
        perm = np.random.default_rng([seed, e]).permutation(n)
        out += [perm[i * batch : (i + 1) * batch] for i in range(n // batch)]
    return out[:steps]


def reference_train(spec, dataset, tx, seed, factor=10.0, history=None):
    """Hand-written loop: losses per step, grad norms, and the divergence step (-1 if none).

    With a ``history`` dict, also appends per step the parameters θ_t the gradient was taken at
    (``"params"``) and the update θ_{t+1} − θ_t (``"updates"``).
    """
    params = reference_params(spec, seed)
    state = tx.init(params)
    grad_fn, update_fn = jax.jit(jax.value_and_grad(reference_loss)), jax.jit(tx.update)
    losses, grad_norms, diverged_at, loss0 = [], [], -1, None
    for t, idx in enumerate(reference_batches(N_TRAIN, 16, spec.steps)):
        x, y = dataset.x_train[idx], dataset.y_train[idx]
        loss, grads = grad_fn(params, x, y)
        loss = float(loss)
        loss0 = loss if t == 0 else loss0
        finite = np.isfinite(loss) and all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
        losses.append(loss)
        grad_norms.append(norm(grads))
        if not finite or loss > factor * loss0:
            diverged_at = t
            break
        updates, state = update_fn(grads, state, params)
        if history is not None:
            history.setdefault("params", []).append(params)
            history.setdefault("updates", []).append(updates)
        params = optax.apply_updates(params, updates)
    return np.array(losses), np.array(grad_norms), diverged_at


# -- tests --------------------------------------------------------------------------------------
def test_vmapped_sweep_equals_each_run_alone(dataset):
    spec = make_spec(dataset)
    ds = gl.run(spec, progress=False)
    assert ds.loss.dims == ("optimizer", "seed", "learning_rate", "step")
    for seed in (0, 1):
        for lr in (1e-2, 3e-2):
            losses, grad_norms, _ = reference_train(spec, dataset, optax.adam(lr), seed)
            got = ds.sel(optimizer="adam", seed=seed, learning_rate=lr)
            np.testing.assert_allclose(got.loss.values, losses, rtol=1e-5)
            np.testing.assert_allclose(got.grad_norm.values, grad_norms, rtol=1e-4)


def test_layout_reading_chains_see_flax_kernels(dataset):
    """Kernels train in [out, in] storage only for chains that ignore layout. Unit-wise
    clipping (AGC: norms over a kernel's input axis) must see Flax's [in, out] kernels: it
    equals the hand-written optax loop, and the clip flags are those of that loop."""
    assert optim.ignores_layout("clip_by_global_norm|adam")
    assert not optim.ignores_layout("adaptive_grad_clip|sgd")
    assert not optim.ignores_layout(lambda hp: optax.sgd(hp["learning_rate"]))
    spec = make_spec(
        dataset,
        optimizers=("adaptive_grad_clip|sgd", "clip_by_global_norm|sgd"),
        grid={"seed": [0], "learning_rate": [0.5], "agc_clip": [0.02], "clip_norm": [0.5]},
    )
    ds = gl.run(spec, progress=False).sel(seed=0, learning_rate=0.5)
    for name, tx in (
        ("adaptive_grad_clip|sgd", optax.chain(optax.adaptive_grad_clip(0.02), optax.sgd(0.5))),
        ("clip_by_global_norm|sgd", optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.5))),
    ):
        losses, _, _ = reference_train(spec, dataset, tx, 0)
        got = ds.sel(optimizer=name, agc_clip=0.02, clip_norm=0.5)
        np.testing.assert_allclose(got.loss.values, losses, rtol=1e-5, err_msg=name)


def test_results_do_not_depend_on_chunk_size(dataset):
    spec = make_spec(dataset, grid={"seed": [0, 1, 2], "learning_rate": [1e-2, 3e-2]})
    whole = gl.run(spec, progress=False)
    for chunk_size in (1, 4):
        chunked = gl.run(spec, chunk_size=chunk_size, progress=False)
        for name in ("loss", "grad_norm", "update_norm", "delta_rms_layer", "final_loss"):
            np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-5, err_msg=name)


def test_a_redefined_module_with_the_same_repr_gets_its_own_program(dataset):
    # In a notebook a re-run cell defines a new class with the old repr ("Shifted()"); the
    # cached program of the old class must not be reused. Reference: the same sweep run
    # with an empty program cache.
    import flax.linen as nn

    def define(shift):
        class Shifted(nn.Module):
            @nn.compact
            def __call__(self, x):
                return nn.Dense(CLASSES, name="dense_0")(x) + shift * jnp.arange(CLASSES)[None]

        return Shifted()

    grid = {"seed": [0], "learning_rate": [0.1]}
    specs = [make_spec(dataset, optimizers=("sgd",), grid=grid, model=define(s)) for s in (0, 3)]
    assert gl.to_toml(specs[0]) == gl.to_toml(specs[1])
    first = gl.run(specs[0], progress=False)
    second = gl.run(specs[1], progress=False)
    assert not np.allclose(first.loss, second.loss)  # the two classes train differently
    gl.engine._PROGRAMS.clear()
    alone = gl.run(specs[1], progress=False)
    np.testing.assert_array_equal(second.loss, alone.loss)
    assert second.attrs["compile_time_s"] > 0
    # The same module object again (and a new instance of the same class) reuses the program.
    assert gl.run(specs[1], progress=False).attrs["compile_time_s"] == 0
    assert (
        gl.run(specs[1].replace(model=type(specs[1].model)()), progress=False).attrs[
            "compile_time_s"
        ]
        == 0
    )


def test_changing_traced_values_does_not_recompile(dataset):
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *a, **k: (
            compiles.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    gl.run(make_spec(dataset, grid={"seed": [0, 1], "learning_rate": [1e-3, 1e-2]}), progress=False)
    before = len(compiles)
    ds = gl.run(
        make_spec(dataset, grid={"seed": [5, 6], "learning_rate": [0.5, 0.05]}), progress=False
    )
    assert len(compiles) == before
    assert ds.attrs["compile_time_s"] == 0.0
    assert list(ds.seed.values) == [5, 6]


def test_divergence_is_frozen_reported_and_isolated(dataset):
    # lr = 50 explodes; its neighbour in the chunk must be bit-identical to a sweep without it.
    spec = make_spec(
        dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [0.1, 50.0]}, steps=20
    )
    calm = spec.replace(grid={"seed": [0], "learning_rate": [0.1, 0.2]})
    ds, ref = gl.run(spec, progress=False), gl.run(calm, progress=False)
    losses, _, diverged_at = reference_train(spec, dataset, optax.sgd(50.0), 0)
    wild = ds.sel(optimizer="sgd", seed=0, learning_rate=50.0)
    assert bool(wild.diverged) and int(wild.diverged_at) == diverged_at >= 0
    np.testing.assert_allclose(wild.loss[: diverged_at + 1], losses, rtol=1e-4)
    assert np.isnan(wild.loss[diverged_at + 1 :]).all()
    assert np.isnan(wild.update_norm[diverged_at:]).all()
    assert np.isnan(wild.final_loss) and np.isnan(wild.test_accuracy)
    assert not wild.clipped[diverged_at:].any()
    for name in ("loss", "grad_norm", "update_norm", "grad_norm_layer", "final_loss"):
        a = ds[name].sel(learning_rate=0.1).values
        b = ref[name].sel(learning_rate=0.1).values
        assert np.array_equal(a, b, equal_nan=True), name
    assert int(ds.diverged_at.sel(learning_rate=0.1).squeeze()) == -1


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


def test_clip_by_global_norm_semantics(dataset):
    spec = make_spec(
        dataset,
        optimizers=("clip_by_global_norm|sgd",),
        grid={"seed": [0, 1], "learning_rate": [0.5], "clip_norm": [0.05, 0.5, 50.0]},
        steps=16,
    )
    ds = gl.run(spec, progress=False)
    lr, c = 0.5, ds.clip_norm
    assert (ds.update_norm <= lr * c * (1 + 1e-5)).all()
    fired = (ds.grad_norm > c).transpose(*ds.clipped.dims)
    np.testing.assert_array_equal(ds.clipped.values, fired.values)
    # Pascanu et al.: g <- g * min(1, c/|g|), so the SGD step is lr * min(|g|, c).
    step = (lr * np.minimum(ds.grad_norm, c)).transpose(*ds.update_norm.dims)
    np.testing.assert_allclose(ds.update_norm, step, rtol=1e-5)
    assert ds.clipped.sel(clip_norm=0.05).all() and not ds.clipped.sel(clip_norm=50.0).any()


def test_final_and_test_metrics_by_hand(dataset):
    spec = make_spec(dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [1e-9]})
    run = gl.run(spec, progress=False).sel(optimizer="sgd", seed=0, learning_rate=1e-9)
    params = reference_params(spec, 0)  # lr 1e-9: the final parameters are the initial ones
    np.testing.assert_allclose(
        run.final_loss, reference_loss(params, dataset.x_train, dataset.y_train), rtol=1e-4
    )
    np.testing.assert_allclose(
        run.test_loss, reference_loss(params, dataset.x_test, dataset.y_test), rtol=1e-4
    )
    logits, _ = reference_forward(params, dataset.x_test, jnp.tanh)
    np.testing.assert_allclose(run.test_accuracy, np.mean(logits.argmax(1) == dataset.y_test))


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


def test_log_every_thins_records_not_training(dataset):
    spec = make_spec(dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [0.1]})
    every = gl.run(spec, progress=False)
    thin = gl.run(spec.replace(log_every=4), progress=False)
    assert list(thin.step.values) == [0, 4, 8]
    np.testing.assert_allclose(thin.loss, every.loss.sel(step=[0, 4, 8]), rtol=1e-6)
    np.testing.assert_allclose(thin.final_loss, every.final_loss, rtol=1e-6)


def test_full_batch_and_epochs(dataset):
    spec = make_spec(
        dataset, optimizers=("sgd",), grid={"learning_rate": [0.1]}, steps=None, epochs=2
    )
    ds = gl.run(spec, progress=False)
    assert ds.sizes["step"] == 2 * (N_TRAIN // 16)
    full = gl.run(spec.replace(epochs=3, batch_size=None), progress=False)
    assert ds.loss.dims == ("optimizer", "learning_rate", "step")
    assert full.sizes["step"] == 3
    params = reference_params(spec, 0)
    np.testing.assert_allclose(
        full.loss.isel(step=0).squeeze(),
        reference_loss(params, dataset.x_train, dataset.y_train),
        rtol=1e-5,
    )


def test_static_axes_are_groups(dataset):
    spec = make_spec(
        dataset,
        optimizers=("sgd", "momentum"),
        grid={"activation": ["relu", "tanh"], "learning_rate": [0.01], "seed": [0]},
    )
    ds = gl.run(spec, progress=False)
    assert ds.loss.dims == ("optimizer", "activation", "learning_rate", "seed", "step")
    tanh = ds.sel(optimizer="sgd", activation="tanh", learning_rate=0.01, seed=0)
    losses, _, _ = reference_train(spec, dataset, optax.sgd(0.01), 0)
    np.testing.assert_allclose(tanh.loss, losses, rtol=1e-5)
    relu = ds.sel(optimizer="sgd", activation="relu", seed=0).loss.values
    assert not np.allclose(relu, tanh.loss.values)


def test_user_callable_chain_and_flax_module(dataset):
    import flax.linen as nn

    class Tiny(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = self.perturb("h0", nn.Dense(6, name="dense_0")(x))
            self.sow("intermediates", "h0", h)
            return nn.Dense(CLASSES, name="dense_1")(jnp.tanh(h))

    def my_sgd(hp):
        return optax.sgd(hp["learning_rate"])

    spec = make_spec(dataset, optimizers=(my_sgd,), model=Tiny())
    ds = gl.run(spec, progress=False)
    assert list(ds.optimizer.values) == ["my_sgd"]
    assert ds.sizes["layer"] == 2
    assert np.isfinite(ds.act_rms_layer.sel(layer=0)).all()
    assert np.isnan(ds.act_rms_layer.sel(layer=1)).all()  # only one signal was sown
    sgd = gl.run(make_spec(dataset, optimizers=("sgd",), model=Tiny()), progress=False)
    np.testing.assert_allclose(ds.loss.values, sgd.loss.values, rtol=1e-6)


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


@pytest.mark.parametrize("metrics", ["none", "default"])
@pytest.mark.parametrize("gain", [1.0, 0.0])
def test_non_finite_gradient_with_finite_loss_diverges_at_that_step(dataset, gain, metrics):
    """d√s/ds = inf at s = 0 (gain 1), and 0·inf = NaN (gain 0): the loss is finite, one
    gradient is not. The run must be reported diverged at step 0 (its parameters frozen there),
    not one step later when the non-finite update has already reached the parameters and the
    loss; with metrics the step is recorded (and checked) differently, so both are run."""
    import flax.linen as nn

    class SqrtGate(nn.Module):
        @nn.compact
        def __call__(self, x):
            s = self.param("gate", nn.initializers.zeros, ())
            return nn.Dense(CLASSES, name="dense_0")(x) * (1 + gain * jnp.sqrt(s))

    x = dataset.x_train[reference_batches(N_TRAIN, 16, 1)[0]]
    loss = lambda s: jnp.sum(gain * jnp.sqrt(s) * x)  # the same kind of derivative, written out
    assert np.isfinite(loss(0.0)) and not np.isfinite(jax.grad(loss)(0.0))
    spec = make_spec(
        dataset,
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [0.1]},
        model=SqrtGate(),
        metrics=(metrics,),
    )
    ds = gl.run(spec, progress=False).squeeze()
    assert np.isfinite(ds.loss.isel(step=0))
    assert bool(ds.diverged) and int(ds.diverged_at) == 0
    assert np.isnan(ds.loss.isel(step=slice(1, None))).all()
    if metrics == "default":  # as numpy's max |g|: inf for the infinity, NaN for the NaN
        np.testing.assert_equal(float(ds.grad_max_abs.isel(step=0)), np.inf if gain else np.nan)


def test_apply_if_finite_skips_instead_of_diverging(dataset):
    x = dataset.x_train.copy()
    x[5] = 3e38  # one poisoned example: its pre-activations overflow to inf and NaN
    poisoned = gl.data.from_arrays(x, dataset.y_train, dataset.x_test, dataset.y_test)
    spec = make_spec(
        poisoned,
        optimizers=("sgd", "apply_if_finite|sgd"),
        grid={"seed": [0], "learning_rate": [0.05]},
        steps=12,
    )
    ds = gl.run(spec, progress=False).sel(seed=0, learning_rate=0.05)
    bad_steps = [t for t, idx in enumerate(reference_batches(N_TRAIN, 16, 12)) if 5 in idx]
    assert bool(ds.diverged.sel(optimizer="sgd"))
    assert int(ds.diverged_at.sel(optimizer="sgd")) == bad_steps[0]
    safe = ds.sel(optimizer="apply_if_finite|sgd")
    assert not bool(safe.diverged)
    assert [int(t) for t in np.flatnonzero(safe.skipped.values)] == bad_steps
    assert np.isfinite(safe.test_loss)  # (its final training loss sees the poisoned example)
