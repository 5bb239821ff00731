"""The compiled training program against the hand-written reference loop (tests/reference.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
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
from gradlab import optim


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


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


def test_log_every_thins_records_not_training(dataset):
    spec = make_spec(dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [0.1]})
    every = gl.run(spec, progress=False)
    thin = gl.run(spec.replace(log_every=4), progress=False)
    assert list(thin.step.values) == [0, 4, 8]
    np.testing.assert_allclose(thin.loss, every.loss.sel(step=[0, 4, 8]), rtol=1e-6)
    np.testing.assert_allclose(thin.final_loss, every.final_loss, rtol=1e-6)


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


def test_a_poisoned_first_batch_keeps_the_divergence_reference(dataset):
    # The first batch holds a poisoned example, so step 0's loss is not finite and
    # apply_if_finite skips it. The factor rule's reference is the first finite, applied
    # step's loss; a reference taken from step 0 would be NaN and the rule off for good.
    first = reference_batches(N_TRAIN, 16, 1)[0]
    x = dataset.x_train.copy()
    x[first[0]] = 3e38  # its pre-activations overflow to inf and NaN
    poisoned = gl.data.from_arrays(x, dataset.y_train, dataset.x_test, dataset.y_test)
    lr, steps = 50.0, 12
    spec = make_spec(
        poisoned,
        optimizers=("apply_if_finite|sgd",),
        grid={"seed": [0], "learning_rate": [lr]},
        steps=steps,
    )
    ds = gl.run(spec, progress=False).squeeze()
    # The hand-written loop: optax's apply_if_finite around sgd, the documented rule.
    tx = optax.apply_if_finite(optax.sgd(lr), 5)
    params, ref, expected = reference_params(spec, 0), np.nan, -1
    state = tx.init(params)
    floor = np.log(CLASSES)  # the loss of all-zero logits
    for t, idx in enumerate(reference_batches(N_TRAIN, 16, steps)):
        loss, grads = jax.value_and_grad(reference_loss)(params, x[idx], dataset.y_train[idx])
        skipped = not all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
        if t == 0:
            assert skipped and not np.isfinite(loss)  # the case this test is about
        if np.isnan(ref) and np.isfinite(loss) and not skipped:
            ref = float(loss)
        finite_params = all(np.isfinite(p).all() for p in jax.tree.leaves(params))
        if float(loss) > 10 * max(ref, floor) or not finite_params:
            expected = t
            break
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert expected > 0  # it does diverge, by the factor rule
    assert int(ds.diverged_at) == expected


def test_a_near_zero_initial_loss_does_not_count_noise_as_divergence():
    # MSE on tiny targets from a tiny init: the first batch's targets are 0, so the initial
    # loss is ~1e-12 while every later batch sits near its zero-output loss (~5e-5). That is
    # noise, not divergence: the rule compares with max(reference, zero-output loss).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = np.full((96, 1), 1e-2, np.float32)
    y[reference_batches(96, 16, 1)[0]] = 0.0
    data = gl.data.from_arrays(x, y, x[:8], y[:8])
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [0.01], "init_scale": [1e-3]},
        steps=12,
        batch_size=16,
    )
    ds = gl.run(spec, progress=False).squeeze()
    loss = ds.loss.values
    assert loss[0] < 1e-9 and (loss[1:] > 10 * loss[0]).all()  # the old rule would fire
    zero_output = 0.5 * np.mean(np.sum(y**2, axis=1))
    assert (loss < 10 * zero_output).all()
    assert not bool(ds.diverged) and int(ds.diverged_at) == -1
