"""Elementwise activation functions by name.

One table shared by the models (forward pass) and the mean-field theory (Gaussian integrals),
so both always mean the same function by the same name.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def _linear(x: jax.Array) -> jax.Array:
    return x


ACTIVATIONS: dict[str, Activation] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,  # tanh approximation, as flax.linen.gelu
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,  # negative slope 0.01
    "swish": jax.nn.swish,
    "linear": _linear,
}


def get_activation(activation: str | Activation) -> Activation:
    """Return the activation function named ``activation`` (or ``activation`` itself if callable).

    Raises:
      ValueError: the name is unknown; the message lists the valid names.
    """
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(
            f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}"
        ) from None
