"""Training losses by name: the per-example loss ℓ_i, whose batch mean the sweep minimises.

=====================  ==========================================================================
``"cross_entropy"``    −log softmax(f(x_i))_{y_i} for integer labels y_i
``"mse"``              ½‖f(x_i) − y_i‖² summed over outputs; integer labels become one-hot vectors
=====================  ==========================================================================

With cross-entropy, a ``z_loss`` grid axis (a traced coefficient z ≥ 0, read by every chain like
``init_scale``) adds PaLM's auxiliary z-loss z·(log Z_i)², Z_i = Σ_k exp f_k(x_i), to the
objective (:func:`objective`): it pulls the softmax normaliser towards 1 and keeps the logits
from drifting (Chowdhery et al. 2022; Wortsman et al. 2023 find it removes the logit-divergence
instability). The engine records as ``loss`` the objective the optimizer sees (with the z-term)
and as ``final_loss``/``test_loss`` the cross-entropy alone (:func:`per_example`), so these stay
comparable across z values.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "LOSSES",
    "Z_LOSS_LOSSES",
    "log_partition",
    "objective",
    "per_example",
    "zero_output_loss",
]


def cross_entropy(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """−log softmax(f(x_i))_{y_i}: softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, y)


def mse(outputs: jax.Array, y: jax.Array) -> jax.Array:
    """½‖f(x_i) − y_i‖² summed over outputs; integer labels become one-hot vectors."""
    if jnp.issubdtype(y.dtype, jnp.integer):
        y = jax.nn.one_hot(y, outputs.shape[-1], dtype=outputs.dtype)
    return 0.5 * jnp.sum((outputs - y) ** 2, axis=-1)


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "cross_entropy": cross_entropy,
    "mse": mse,
}


# The losses a z_loss axis may be added to: those with a softmax normaliser.
Z_LOSS_LOSSES = ("cross_entropy",)


def per_example(kind: str, outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example loss ℓ_i of loss ``kind`` (a key of :data:`LOSSES`)."""
    try:
        loss = LOSSES[kind]
    except KeyError:
        raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(LOSSES)}") from None
    return loss(outputs, y)


def log_partition(outputs: jax.Array) -> jax.Array:
    r"""log Z_i = log Σ_k exp f_k(x_i), the log of the softmax normaliser of each example.

    Args:
      outputs: logits, [..., K].

    Returns:
      The log-partition per example, [...] (computed stably, as ``logsumexp``).

    Example:
      >>> float(log_partition(jnp.zeros(4)))  # log 4
      1.3862943649291992
    """
    return jax.nn.logsumexp(outputs, axis=-1)


def objective(
    kind: str, outputs: jax.Array, y: jax.Array, z_loss: jax.Array | float | None = None
) -> jax.Array:
    r"""The per-example training objective: the loss plus, with ``z_loss``, PaLM's z-loss.

    .. math:: \ell_i + z\,(\log Z_i)^2, \qquad \log Z_i = \log \sum_k e^{f_k(x_i)}

    with ℓ_i the loss ``kind`` (:func:`per_example`) and z = ``z_loss``. The z-term is zero
    exactly when the softmax normaliser is 1; its gradient z·2 log Z_i·softmax(f) pulls every
    logit down by its probability, so the logits cannot drift together while the cross-entropy
    (blind to a shift of all logits) allows it.

    Args:
      kind: a key of :data:`LOSSES`; with ``z_loss``, one of :data:`Z_LOSS_LOSSES`.
      outputs: the network's outputs (logits), [..., K].
      y: the targets (integer labels for cross-entropy).
      z_loss: the coefficient z ≥ 0 (a traced scalar in a sweep); ``None``: no z-term, and the
        objective is :func:`per_example` itself.

    Returns:
      The objective per example, [...].

    Raises:
      ValueError: ``z_loss`` with a loss that has no softmax (``"mse"``).

    Example:
      >>> logits, y = jnp.array([[2.0, 0.0, 0.0]]), jnp.array([0])
      >>> ce = per_example("cross_entropy", logits, y)
      >>> bool(jnp.allclose(objective("cross_entropy", logits, y, 0.1),
      ...                   ce + 0.1 * log_partition(logits) ** 2))
      True

    References:
      Chowdhery et al., "PaLM: Scaling language modeling with Pathways", JMLR 2023
      (arXiv:2204.02311), section 5 ("z_loss = 10⁻⁴ · log² Z").
      Wortsman et al., "Small-scale proxies for large-scale Transformer training
      instabilities", ICLR 2024 (arXiv:2309.14322): the z-loss against output-logit
      divergence.
    """
    loss = per_example(kind, outputs, y)
    if z_loss is None:
        return loss
    if kind not in Z_LOSS_LOSSES:
        raise ValueError(f"z_loss needs a softmax loss ({', '.join(Z_LOSS_LOSSES)}), not {kind!r}")
    return loss + z_loss * jnp.square(log_partition(outputs))


def zero_output_loss(kind: str, y: np.ndarray, num_outputs: int) -> float:
    """The mean loss of a network whose outputs are all zero: the scale of a problem's loss.

    Cross-entropy: log K for K outputs (a uniform softmax). MSE: ½ E‖y_i‖² over the targets
    (½ for class labels, which become one-hot).
    """
    if kind == "cross_entropy":
        return float(np.log(num_outputs))
    if kind == "mse":
        if np.issubdtype(np.asarray(y).dtype, np.integer):
            return 0.5
        return float(0.5 * np.mean(np.sum(np.square(np.asarray(y, np.float64)), axis=-1)))
    raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(LOSSES)}")
