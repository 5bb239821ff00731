"""An independent reference for the engine's tests: a small data set and hand-written loops.

The reference shares nothing with the engine but the parameter initialiser (tested on its own in
test_models.py): its forward pass, loss, batch order, optimizer loop and divergence rule are
written out here with jnp and optax directly.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradlab as gl
from gradlab import models

N_TRAIN, N_TEST, D_IN, CLASSES = 96, 32, 12, 3
HIDDEN = (8, 8)


def small_dataset():
    """A linearly separable 3-class problem: 96 training and 32 test examples of 12 features."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN + N_TEST, D_IN)).astype(np.float32)
    w = rng.normal(size=(D_IN, CLASSES))
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    return gl.data.from_arrays(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:])


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


def reference_loss(params, x, y, activation=jnp.tanh, z_loss=0.0):
    """Mean cross-entropy, plus PaLM's z-loss z·(log Σ_k exp f_k)² written out with exp/log."""
    logits, _ = reference_forward(params, x, activation)
    logp = jax.nn.log_softmax(logits)
    ce = -jnp.take_along_axis(logp, y[:, None], axis=1)[:, 0]
    if not z_loss:  # the plain cross-entropy, untouched (0·(log Z)² is NaN where log Z = ∞)
        return jnp.mean(ce)
    top = jnp.max(logits, axis=1)
    log_z = top + jnp.log(jnp.sum(jnp.exp(logits - top[:, None]), axis=1))
    return jnp.mean(ce + z_loss * log_z**2)


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


@functools.cache
def objective_grad(z_loss: float):
    """The jitted loss and gradient of the objective, compiled once per ``z_loss``."""
    objective = functools.partial(reference_loss, activation=jnp.tanh, z_loss=z_loss)
    return jax.jit(jax.value_and_grad(objective))


def reference_train(spec, dataset, tx, seed, factor=10.0, history=None, z_loss=0.0):
    """Hand-written loop: losses per step, grad norms, and the divergence step (-1 if none).

    With a ``history`` dict, also appends per step the parameters θ_t the gradient was taken at
    (``"params"``) and the update θ_{t+1} − θ_t (``"updates"``), and at the end the parameters
    after training (``"final"``). ``z_loss`` adds the z-loss to the objective.
    """
    params = reference_params(spec, seed)
    state = tx.init(params)
    grad_fn, update_fn = objective_grad(z_loss), jax.jit(tx.update)
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
    if history is not None:
        history["final"] = params
    return np.array(losses), np.array(grad_norms), diverged_at


def make_spec(dataset, optimizers=("adam",), grid=None, steps=12, **kwargs):
    grid = grid if grid is not None else {"seed": [0, 1], "learning_rate": [1e-2, 3e-2]}
    kwargs.setdefault("model", gl.ModelSpec(hidden=HIDDEN, activation="tanh"))
    return gl.SweepSpec(
        data=dataset, optimizers=optimizers, grid=grid, steps=steps, batch_size=16, **kwargs
    )
