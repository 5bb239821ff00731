"""The default explosion metrics: pure functions of one training step of one run.

Every function here maps arrays/PyTrees of a single run and a single step to arrays, so the
engine can ``vmap`` them across runs and ``scan`` them across steps. What each recorded variable
means (dims, unit, direction) is in :mod:`gradlab.schema`; the notes here are on how they are
computed. θ_t are the parameters at step t, g_t = ∇L(θ_t) the raw minibatch gradient (before
any clipping), u_t the optimizer's update (θ_{t+1} = θ_t + u_t for a live run), h^l the
pre-activation of layer l and L the mean loss over the batch.

- Norms are L2 norms over a layer's kernel and bias; global norms are the root of the summed
  per-layer sums of squares (one pass over the arrays).
- ``delta_rms_layer`` is the RMS of δ^l = ∂L/∂h^l, obtained as the gradient of a zero
  perturbation of h^l in the same backward pass; with L the batch mean, δ^l carries a factor
  1/B. The layer-to-layer ratio (δ^{l-1}/δ^l)²·N_{l-1}/N_l, with N_l the width of h^l, is the
  empirical χ1 of mean-field theory (see ``gradlab.analysis.empirical_chi1``).
- ``grad_max_abs`` is NaN when g_t has a NaN (as numpy's ``max``), else ``inf`` when it has an
  infinity, so its finiteness is the gradient's (:func:`tree_max_abs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradlab.models import natural_key

__all__ = [
    "accuracy",
    "flat_signals",
    "layer_sums_of_squares",
    "rms",
    "step_metrics",
    "tree_all_finite",
    "tree_max_abs",
]


def accuracy(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of argmax predictions equal to integer labels; NaN for regression targets."""
    if not jnp.issubdtype(y.dtype, jnp.integer):
        return jnp.full([], jnp.nan, outputs.dtype)
    return jnp.mean(jnp.argmax(outputs, axis=-1) == y).astype(outputs.dtype)


def tree_max_abs(tree: Any, sums_of_squares: jax.Array | None = None) -> jax.Array:
    """max |x| over all leaves; NaN when an element is NaN (as numpy's ``max``), else ``inf``
    when one is ±inf. So ``isfinite(tree_max_abs(x))`` says whether every element is finite.

    The NaN is found through Σ x², not the maximum: XLA's CPU max reduction (YNNPACK, for
    arrays the size of a layer) can skip NaN elements (openxla/xla#21461; on jax 0.10
    ``jnp.max`` of a [64, 10, 784] array with one NaN per row returned a finite maximum for
    every row). Σ x² is NaN exactly when x has a NaN (squares are ≥ 0 or +inf, so no inf − inf
    arises); that it can overflow to inf does not matter here.

    Args:
      tree: a PyTree of arrays.
      sums_of_squares: Σ x² of the tree, or any array whose sum is (the per-layer
        :func:`layer_sums_of_squares`), when the caller has it: at a recorded step the gradient
        norms need it anyway, so max |g| and the finiteness check add one reduction over the
        gradient, not two.
    """
    if sums_of_squares is None:
        sums_of_squares = sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))
    largest = jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]))
    return jnp.where(jnp.isnan(jnp.sum(sums_of_squares)), jnp.nan, largest)


def tree_all_finite(tree: Any) -> jax.Array:
    """Whether every element of every leaf is finite: ``isfinite(Σ 0·x)``.

    0·x is NaN exactly for x = ±inf or NaN, a sum propagates NaN, and a sum of zeros cannot
    overflow (a sum of squares can). One float reduction, cheaper than max |x| (which besides
    can skip NaN on CPU, see :func:`tree_max_abs`) and than ``all(isfinite(x))``, a boolean
    reduction that XLA on CPU does not vectorise (benchmarks/README.md, item 2). Where Σ x² and
    max |x| are computed anyway, ``isfinite(tree_max_abs(x, sums_of_squares))`` needs no
    reduction more (item 10).
    """
    return jnp.isfinite(sum(jnp.sum(x * 0) for x in jax.tree.leaves(tree)))


def layer_sums_of_squares(tree: dict[str, Any], layers: Sequence[str]) -> jax.Array:
    """[L] vector of Σ x² over each layer's leaves; the layer norms are its square roots. Every
    top-level entry of a params dict is a layer, so the global norm (as ``optax.tree.norm``) is
    ``sqrt(sum(...))`` of it: one pass over the arrays, not two."""
    return jnp.stack(
        [sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree[n])) for n in layers]
    )


def rms(x: jax.Array) -> jax.Array:
    """Root mean square over all elements."""
    return jnp.sqrt(jnp.mean(jnp.square(x)))


def flat_signals(tree: Any) -> list[jax.Array]:
    """The arrays of a sown/perturbed collection in layer order (natural sort of their paths)."""
    if not tree:
        return []
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    keyed = [(natural_key(jax.tree_util.keystr(path)), leaf) for path, leaf in leaves]
    return [leaf for _, leaf in sorted(keyed, key=lambda kv: kv[0])]


def _pad(values: jax.Array | list[jax.Array], n: int, dtype: Any) -> jax.Array:
    """A [n] vector: ``values`` (an array or a possibly empty list of scalars) followed by NaN
    for the layers that have no such signal."""
    values = jnp.asarray(values, dtype).reshape(-1)
    return jnp.concatenate([values, jnp.full([n - values.shape[0]], jnp.nan, dtype)])


def step_metrics(
    *,
    loss: jax.Array,
    outputs: jax.Array,
    y: jax.Array,
    grad_sq: jax.Array,
    grad_max_abs: jax.Array,
    param_sq: jax.Array,
    updates: dict[str, Any],
    layers: Sequence[str],
    signals: Any,
    signal_grads: Any,
    num_layers: int,
    clipped: jax.Array,
    skipped: jax.Array,
) -> dict[str, jax.Array]:
    """All default metrics of one step of one run (see the module docstring for definitions).

    Args:
      loss, outputs, y: the batch loss, the network outputs and the targets.
      grad_sq: [L] Σ (g_t^l)² per layer of the raw gradient g_t = ∇L(θ_t),
        :func:`layer_sums_of_squares` of it.
      grad_max_abs: max |g_t|, :func:`tree_max_abs` of it with ``grad_sq``. The caller reduces
        the gradient once for both and derives its divergence check from them too.
      param_sq: [L] Σ (θ_t^l)² per layer, :func:`layer_sums_of_squares` of θ_t. The caller
        computes it where θ_t is produced: read in the step that overwrites θ_t in place, it
        would make XLA copy θ_t every step (see ``engine.Carry``).
      updates: the optimizer's update ``u_t``, which a live run applies: ``θ_{t+1} = θ_t + u_t``.
      layers: the top-level layer names of the parameter dicts, in order.
      signals: the ``"intermediates"`` collection (pre-activations h^l).
      signal_grads: gradients w.r.t. the ``"perturbations"`` collection (δ^l = ∂L/∂h^l).
      num_layers: length of the ``layer`` dimension (signals are NaN-padded to it).
      clipped, skipped: flags read from the optimizer state after the update.

    Returns:
      metric name -> scalar (or [num_layers] vector for ``*_layer`` metrics).
    """
    update_sq = layer_sums_of_squares(updates, layers)
    dtype = loss.dtype
    return {
        "loss": loss,
        "accuracy": accuracy(outputs, y),
        "grad_norm": jnp.sqrt(jnp.sum(grad_sq)),
        "grad_max_abs": grad_max_abs,
        "update_norm": jnp.sqrt(jnp.sum(update_sq)),
        "clipped": clipped,
        "skipped": skipped,
        "grad_norm_layer": _pad(jnp.sqrt(grad_sq), num_layers, dtype),
        "param_norm_layer": _pad(jnp.sqrt(param_sq), num_layers, dtype),
        "update_ratio_layer": _pad(jnp.sqrt(update_sq / param_sq), num_layers, dtype),
        "act_rms_layer": _pad([rms(h) for h in flat_signals(signals)], num_layers, dtype),
        "delta_rms_layer": _pad([rms(d) for d in flat_signals(signal_grads)], num_layers, dtype),
    }
