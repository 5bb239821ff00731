"""The grid's axes: which kind each is, and how its description becomes checked values.

A sweep's grid maps axis names to values. An axis is one of:

* **static** (:data:`STATIC_AXES`: ``activation``, ``init``, ``batch_size``, ``width``,
  ``depth``, ``dtype``): each value is its own compiled program (a *group*);
* **model** (:data:`MODEL_AXES`: ``seed``, ``init_scale``, ``bias_std``, ``z_loss``): traced,
  read by every chain (the initial parameters and the training objective);
* an **optimizer hyperparameter** (``learning_rate``, ``clip_norm``, ``momentum``, ...,
  ``lr_mult_l``): traced, read by the chains whose stages take it (:mod:`gradlab.optim`).

:func:`expand_axis` turns a description (a list, or ``{logspace = [a, b, n]}``) into values and
:func:`check_axis_values` checks them for their axis, after conversion to the dtype the
compiled program receives (float32 for real axes), naming the field on error.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gradlab.activations import ACTIVATIONS
from gradlab.errors import fail
from gradlab.inits import INITS
from gradlab.layer_rates import layer_lr_axis
from gradlab.optim import HPARAM_RANGES, LR_MULT_RANGE, Range

__all__ = [
    "DTYPES",
    "MODEL_AXES",
    "STATIC_AXES",
    "STRUCTURE_AXES",
    "check_axis_values",
    "expand_axis",
    "is_int",
    "is_real",
]

STATIC_AXES = ("activation", "init", "batch_size", "width", "depth", "dtype")
DTYPES = ("float32", "float64", "bfloat16")  # the dtype axis: see gradlab.engine.program.Config
STRUCTURE_AXES = ("width", "depth")  # static axes that change the network's shape

# Traced axes that the model or the engine read (the optimizer stages declare their own), with
# their valid values where they are real numbers. Every chain reads them: ``z_loss`` is a term
# of the training objective (gradlab.losses.objective), not an optimizer hyperparameter.
MODEL_AXES = ("seed", "init_scale", "bias_std", "z_loss")
MODEL_AXIS_RANGES = {
    "init_scale": Range(0.0, low_closed=False),
    "bias_std": Range(0.0),
    "z_loss": Range(0.0),
}


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def expand_axis(field: str, values: Any) -> tuple[Any, ...]:
    """Turn a grid axis description into a tuple of values.

    Accepts a list of numbers or strings, a numpy array, or a table ``{"logspace": [a, b, n]}``
    (n values from 10^a to 10^b) or ``{"linspace": [a, b, n]}``.
    """
    if isinstance(values, Mapping):
        if len(values) != 1 or next(iter(values)) not in ("logspace", "linspace"):
            raise fail(field, f"a table must be {{logspace = [a, b, n]}} or linspace: {values!r}")
        kind, args = next(iter(values.items()))
        if (
            not isinstance(args, Sequence)
            or len(args) != 3
            or not all(is_real(a) and math.isfinite(a) for a in args[:2])
            or not is_int(args[2])
            or args[2] < 1
        ):
            raise fail(field, f"{kind} takes [start, stop, count], got {args!r}")
        if args[1] < args[0]:
            raise fail(field, f"{kind} range is reversed: {args[0]} > {args[1]}")
        fn = np.logspace if kind == "logspace" else np.linspace
        values = tuple(float(v) for v in fn(args[0], args[1], int(args[2])))
        if len(set(values)) != len(values):
            raise fail(field, f"{kind} {list(args)} gives repeated values: {list(values)}")
        return values
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        values = [values]
    values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
    if not values:
        raise fail(field, "must have at least one value")
    for v in values:
        if not isinstance(v, (str, numbers.Number)):
            raise fail(field, f"values must be numbers or names, got {v!r}")
    if len(set(values)) != len(values):
        raise fail(field, f"has repeated values: {list(values)}")
    return values


def check_axis_values(field: str, name: str, values: tuple[Any, ...]) -> None:
    if name == "activation":
        for v in values:
            if v not in ACTIVATIONS:
                raise fail(field, f"unknown activation {v!r}; valid: {', '.join(ACTIVATIONS)}")
        return
    if name == "dtype":
        for v in values:
            if v not in DTYPES:
                raise fail(field, f"unknown dtype {v!r}; valid: {', '.join(DTYPES)}")
        return
    if name == "init":
        for v in values:
            if v not in INITS:
                raise fail(field, f"unknown init {v!r}; valid: {', '.join(INITS)}")
        return
    if name in ("batch_size", "seed", "width", "depth"):
        for v in values:
            if not is_int(v) or v < (0 if name == "seed" else 1):
                kind = "non-negative" if name == "seed" else "positive"
                raise fail(field, f"values must be {kind} integers, got {v!r}")
            if name == "seed" and v >= 2**31:  # seeds are int32 inside the program
                raise fail(field, f"values must be below 2**31 (int32), got {v!r}")
        return
    _check_real_values(field, name, values)


def _check_real_values(field: str, name: str, values: tuple[Any, ...]) -> None:
    """A traced real axis: finite, in its domain, and the same numbers as float32, which is how
    the compiled program receives them (so 1e39 would become inf and 1e-320 zero, and two
    values closer than float32 resolves would label one run twice)."""
    valid = HPARAM_RANGES.get(name) or MODEL_AXIS_RANGES.get(name) or Range(-math.inf)
    if layer_lr_axis(name) is not None:
        valid = LR_MULT_RANGE
    for v in values:
        if not is_real(v) or not math.isfinite(v):
            raise fail(field, f"values must be finite numbers, got {v!r}")
        if v not in valid:
            raise fail(field, f"values must be {valid}, got {v!r}")
        with np.errstate(over="ignore", under="ignore"):
            as_float32 = np.float32(v)
        if not np.isfinite(as_float32) or (v != 0 and as_float32 == 0):
            raise fail(field, f"{v!r} is not representable in float32 (it becomes {as_float32})")
    rounded = [float(np.float32(v)) for v in values]
    if len(set(rounded)) != len(rounded):
        raise fail(field, f"values are equal in float32 (the same runs twice): {list(values)}")
