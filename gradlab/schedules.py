"""Learning-rate schedules: the peak learning rate η (a traced value in a sweep) over the steps.

:data:`SCHEDULES` maps a name to a builder ``(η, total steps T, warmup steps W) -> optax
schedule``; :func:`make_schedule` applies one. Every builder does only array arithmetic on η, so
one compiled program serves every learning rate on the grid. :mod:`gradlab.optim` applies the
schedule to every optimizer stage of a chain.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax

__all__ = ["SCHEDULES", "ScheduleBuilder", "make_schedule"]


ScheduleBuilder = Callable[[jax.Array, int, int], optax.ScalarOrSchedule]


def _constant(peak: jax.Array, total_steps: int, warmup_steps: int) -> optax.ScalarOrSchedule:
    """η_t = η."""
    del total_steps, warmup_steps
    return peak


def _cosine(peak: jax.Array, total_steps: int, warmup_steps: int) -> optax.ScalarOrSchedule:
    """η_t = η·½(1 + cos(π·min(t, T)/T)), T = ``total_steps``: η at t = 0, 0 at t = T."""
    del warmup_steps
    return optax.cosine_decay_schedule(peak, max(total_steps, 1))


def _warmup_cosine(peak: jax.Array, total_steps: int, warmup_steps: int) -> optax.ScalarOrSchedule:
    """η_t = η·t/W for t < W, then η·½(1 + cos(π·min(t − W, T − W)/(T − W))).

    ``optax.warmup_cosine_decay_schedule`` cannot serve here: it tests ``peak_value == 0`` in
    Python, which fails for a traced (vmapped) learning rate. Its two pieces, joined at W, are
    the same schedule with end value 0 and only array arithmetic on ``peak``.
    """
    decay_steps = max(total_steps - warmup_steps, 1)
    return optax.join_schedules(
        [
            optax.linear_schedule(0.0, peak, warmup_steps),
            optax.cosine_decay_schedule(peak, decay_steps),
        ],
        [warmup_steps],
    )


def _warmup_constant(
    peak: jax.Array, total_steps: int, warmup_steps: int
) -> optax.ScalarOrSchedule:
    """η_t = η·min(t, W)/W."""
    del total_steps
    return optax.linear_schedule(0.0, peak, warmup_steps)


# Learning-rate schedules by name: (peak η, total steps T, warmup steps W) -> optax schedule.
# Every builder does only array arithmetic on η, which is a traced hyperparameter in a sweep.
SCHEDULES: dict[str, ScheduleBuilder] = {
    "constant": _constant,
    "cosine": _cosine,
    "warmup_cosine": _warmup_cosine,
    "warmup_constant": _warmup_constant,
}


def make_schedule(
    kind: str, peak: jax.Array, total_steps: int, warmup_steps: int = 0
) -> optax.ScalarOrSchedule:
    """A learning-rate schedule peaking at the (traced) ``peak`` learning rate η.

    The value at optimizer step t (the count of updates applied before it), with T =
    ``total_steps`` and W = ``warmup_steps``:

    * ``"constant"``: η (returned as it is, not as a function);
    * ``"cosine"``: η·½(1 + cos(π·min(t, T)/T)), from η down to 0 at T (Loshchilov & Hutter);
    * ``"warmup_cosine"``: η·t/W for t < W (linear from 0), then
      η·½(1 + cos(π·min(t − W, T − W)/(T − W))), down to 0 at T;
    * ``"warmup_constant"``: η·min(t, W)/W.

    Args:
      kind: a name in :data:`SCHEDULES`.
      peak: the peak learning rate η, a Python float or a (traced) scalar array.
      total_steps: T, the length of the run.
      warmup_steps: W, the length of the linear warmup.

    Returns:
      ``peak`` for ``"constant"``, else a function of the step count (an ``optax.Schedule``).

    Raises:
      ValueError: unknown ``kind``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> lr = jax.vmap(lambda eta: make_schedule("warmup_cosine", eta, 10, 2)(6))
      >>> [round(float(v), 4) for v in lr(jnp.array([0.1, 1.0]))]
      [0.05, 0.5]

    References:
      Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2017.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; valid schedules: {', '.join(SCHEDULES)}")
    return SCHEDULES[kind](peak, total_steps, warmup_steps)
