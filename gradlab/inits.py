"""Kernel initialisation schemes by name, each with the standard deviation it draws.

One table shared by the models (the draw) and the spec (the valid names). A scheme draws every
kernel entry with standard deviation s(fan_in, fan_out); a sweep's ``init_scale`` multiplies it
(see :func:`gradlab.models.init_params`), so ``init="normal"`` with ``init_scale = σ_w`` is the
mean-field W ~ N(0, σ_w²/fan_in) of Poole et al. 2016.

==================  =================================================  =========================
scheme              distribution                                       std s
==================  =================================================  =========================
``lecun_normal``    truncated normal                                   √(1/fan_in)
``glorot_uniform``  U(±√(6/(fan_in+fan_out))) (Keras' ``Dense``)       √(2/(fan_in+fan_out))
``glorot_normal``   truncated normal                                   √(2/(fan_in+fan_out))
``he_normal``       truncated normal                                   √(2/fan_in)
``he_uniform``      U(±√(6/fan_in))                                    √(2/fan_in)
``normal``          N(0, 1/fan_in)                                     √(1/fan_in)
``orthogonal``      orthonormal rows or columns                        √(1/max(fan_in, fan_out))
``torch_linear``    U(±1/√fan_in), biases U(±1/√fan_in) too            √(1/(3·fan_in))
==================  =================================================  =========================

Every scheme but ``torch_linear`` starts biases at zero. ``torch_linear`` is PyTorch's default
``nn.Linear`` init: ``kaiming_uniform_(a=√5)`` gives the bound √(6/((1+a²)·fan_in)) = 1/√fan_in
for the weight, and the bias is drawn from U(±1/√fan_in) (``torch.nn.Linear.reset_parameters``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["INITS", "InitScheme", "init_std"]


@dataclasses.dataclass(frozen=True)
class InitScheme:
    """A kernel initialiser (Flax's signature), the standard deviation of its entries, and the
    bias initialiser for a layer of a given fan-in (zeros unless the scheme says otherwise)."""

    initializer: Callable[..., Any]
    std: Callable[[int, int], float]  # (fan_in, fan_out) -> s
    bias: Callable[[int], Callable[..., Any]] = lambda fan_in: nn.initializers.zeros


def _uniform(bound: float) -> Callable[..., Any]:
    """U(±bound), as a Flax initialiser."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _torch_kernel(key, shape, dtype=jnp.float32):
    """PyTorch's default Linear weight, U(±1/√fan_in), for a Flax [in, out] kernel."""
    return _uniform(1 / math.sqrt(shape[0]))(key, shape, dtype)


INITS: dict[str, InitScheme] = {
    "lecun_normal": InitScheme(nn.initializers.lecun_normal(), lambda i, o: math.sqrt(1 / i)),
    "glorot_uniform": InitScheme(
        nn.initializers.glorot_uniform(), lambda i, o: math.sqrt(2 / (i + o))
    ),
    "glorot_normal": InitScheme(
        nn.initializers.glorot_normal(), lambda i, o: math.sqrt(2 / (i + o))
    ),
    "he_normal": InitScheme(nn.initializers.he_normal(), lambda i, o: math.sqrt(2 / i)),
    "he_uniform": InitScheme(nn.initializers.he_uniform(), lambda i, o: math.sqrt(2 / i)),
    "normal": InitScheme(
        nn.initializers.variance_scaling(1.0, "fan_in", "normal"), lambda i, o: math.sqrt(1 / i)
    ),
    "orthogonal": InitScheme(nn.initializers.orthogonal(), lambda i, o: math.sqrt(1 / max(i, o))),
    "torch_linear": InitScheme(
        _torch_kernel, lambda i, o: math.sqrt(1 / (3 * i)), lambda i: _uniform(1 / math.sqrt(i))
    ),
}


def init_std(init: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation of a kernel entry under ``init`` at ``init_scale = 1``."""
    try:
        return INITS[init].std(fan_in, fan_out)
    except KeyError:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}") from None
