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
==================  =================================================  =========================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn

__all__ = ["INITS", "InitScheme", "init_std"]


@dataclasses.dataclass(frozen=True)
class InitScheme:
    """A kernel initialiser (Flax's signature) and the standard deviation of its entries."""

    initializer: Callable[..., Any]
    std: Callable[[int, int], float]  # (fan_in, fan_out) -> s


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
}


def init_std(init: str, fan_in: int, fan_out: int) -> float:
    """The standard deviation of a kernel entry under ``init`` at ``init_scale = 1``."""
    try:
        return INITS[init].std(fan_in, fan_out)
    except KeyError:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}") from None
