"""Explosion metrics: pure functions of one training step.

Every function here maps arrays/PyTrees of a single run and a single step to arrays, so the
engine can ``vmap`` them across runs and ``scan`` them across steps. Definitions (θ_t the
parameters at step t, g_t = ∇L(θ_t) the raw minibatch gradient, h^l the pre-activation of layer l,
L the mean loss over the batch):

=====================  ==========================================================================
``loss``               L(θ_t) on the step's batch (mean over examples)
``accuracy``           fraction of the batch whose argmax output is the label (NaN for regression)
``grad_norm``          ‖g_t‖₂ over all parameters, before any clipping
``grad_max_abs``       max |g_t| over all parameters (NaN if g_t has a NaN, as numpy's ``max``)
``update_norm``        ‖θ_{t+1} − θ_t‖₂, the step actually taken (after clipping, momentum, ...)
``grad_norm_layer``    ‖g_t^l‖₂ over layer l's parameters (kernel and bias)
``param_norm_layer``   ‖θ_t^l‖₂
``update_ratio_layer`` ‖θ_{t+1}^l − θ_t^l‖₂ / ‖θ_t^l‖₂
``act_rms_layer``      RMS of h^l over batch and units (forward signal)
``delta_rms_layer``    RMS of δ^l = ∂L/∂h^l over batch and units (backward signal); with L the
                       batch mean, δ^l carries a factor 1/B. The layer-to-layer ratio
                       (δ^{l-1}/δ^l)² is the empirical χ1 of mean-field theory.
``clipped``            a clip stage changed the gradient this step
``skipped``            ``apply_if_finite`` dropped this step's update
=====================  ==========================================================================

Opt-in metric sets, measured every ``sharpness_every`` steps (NaN at the other logged steps) on
the step's batch (the full training set when ``batch_size=None``), by
:mod:`gradlab.curvature`:

=====================  ==========================================================================
``sharpness``          λ_max(∇²L(θ_t)), the largest (algebraic) Hessian eigenvalue, by Lanczos
                       with ``sharpness_iters`` Hessian-vector products, warm-started from the
                       previous measurement's eigenvector
``sharpness_bound``    the chain's edge of stability at step t's learning rate η_t: 2/η_t (sgd),
                       (2+2β)/η_t (momentum), (2+2β1)/(η_t(1−β1)) (adam; the bound on
                       ``precond_sharpness``); NaN where no closed form is known
``precond_sharpness``  λ_max(P⁻¹∇²L) with P Adam's preconditioner after step t's update (the one
                       that produced θ_{t+1}); NaN for chains without Adam
``hessian_trace``      tr ∇²L by Hutchinson's estimator (10 Rademacher probes, shared by all runs)
``grad_noise_scale``   B_simple = tr Σ / ‖G‖² from the per-example gradients (McCandlish et al.)
``grad_snr``           mean over parameters of ḡ²/s² (per-example gradient signal-to-noise)
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gradlab.models import natural_key

__all__ = [
    "LAYER_METRICS",
    "STEP_METRICS",
    "accuracy",
    "flat_signals",
    "layer_sums_of_squares",
    "per_example_loss",
    "rms",
    "step_metrics",
    "tree_all_finite",
    "tree_max_abs",
]

STEP_METRICS = (
    "loss",
    "accuracy",
    "grad_norm",
    "grad_max_abs",
    "update_norm",
    "clipped",
    "skipped",
)
LAYER_METRICS = (
    "grad_norm_layer",
    "param_norm_layer",
    "update_ratio_layer",
    "act_rms_layer",
    "delta_rms_layer",
)


def per_example_loss(kind: str, outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example loss ℓ_i; the training loss is their mean.

    ``"cross_entropy"``: −log softmax(f(x_i))_{y_i} for integer labels y_i.
    ``"mse"``: ½‖f(x_i) − y_i‖² summed over outputs; integer labels become one-hot vectors.
    """
    if kind == "cross_entropy":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, y)
    if kind == "mse":
        if jnp.issubdtype(y.dtype, jnp.integer):
            y = jax.nn.one_hot(y, outputs.shape[-1], dtype=outputs.dtype)
        return 0.5 * jnp.sum((outputs - y) ** 2, axis=-1)
    raise ValueError(f"unknown loss {kind!r}")


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
    overflow (a sum of squares can). One reduction, and the cheapest one: 0.32 ms for the
    article MLP's first kernel at 256 runs against 0.34-0.50 ms for max |x| (which besides can
    skip NaN on CPU, see :func:`tree_max_abs`). ``all(isfinite(x))``, a boolean reduction that
    XLA on CPU does not vectorise, cost 2.5x as much per training step. Where Σ x² and max |x|
    are computed anyway, ``isfinite(tree_max_abs(x, sums_of_squares))`` needs no reduction more.
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
