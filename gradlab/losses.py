"""Training losses by name: the per-example loss ℓ_i, whose batch mean the sweep minimises.

=====================  ==========================================================================
``"cross_entropy"``    −log softmax(f(x_i))_{y_i} for integer labels y_i
``"mse"``              ½‖f(x_i) − y_i‖² summed over outputs; integer labels become one-hot vectors
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LOSSES", "per_example", "zero_output_loss"]


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


def per_example(kind: str, outputs: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example loss ℓ_i of loss ``kind`` (a key of :data:`LOSSES`)."""
    try:
        loss = LOSSES[kind]
    except KeyError:
        raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(LOSSES)}") from None
    return loss(outputs, y)


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
