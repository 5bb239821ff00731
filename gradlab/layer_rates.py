"""Per-layer learning rates: the ``lr_mult_l`` grid axes and the optax stage that applies them.

Layer l's update (layer 0 the input side; the layers are the top-level entries of the
parameters in natural name order, :func:`gradlab.models.layer_names`) is multiplied by

.. math::

  c_{l,p} = \\mathrm{lr\\_mult}_l \\cdot \\eta^{\\mathrm{param}}_{l,p}

for each of its parameters p (kernel, bias): ``lr_mult_l`` is a traced grid axis (1 where the
grid is silent), η^param the parametrization's learning-rate multiplier
(:mod:`gradlab.parametrizations`, for the chain's update kind; 1 under SP). The factors are
applied by :func:`scale_by_layer`, which :func:`gradlab.optim.build_chain` appends to a chain
string as its last stage, so they multiply the optimizer stage's learning rate and schedule; a
clip stage before it still sees the raw gradient. A callable chain takes none of them
(:func:`check_layer_rates` refuses ``lr_mult_*`` axes and μP with one).

With per-layer learning rates the curvature sets ``sharpness`` and ``precond_sharpness`` are
refused: ``sharpness_bound`` is the edge of stability of one learning rate for every
parameter, and Adam's preconditioner in ``precond_sharpness`` leaves out the layers' factors,
so both would be wrong numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gradlab.errors import fail

__all__ = [
    "LR_MULT_PREFIX",
    "check_layer_rate_axes",
    "check_layer_rates",
    "layer_lr_axis",
    "layer_scales",
    "scale_by_layer",
]

LR_MULT_PREFIX = "lr_mult_"


def layer_lr_axis(name: str) -> int | None:
    """The layer l of a per-layer learning-rate axis ``"lr_mult_l"`` (``None``: not one).

    Only the canonical spelling counts (``lr_mult_0``, ``lr_mult_12``; not ``lr_mult_01``).
    """
    digits = name[len(LR_MULT_PREFIX) :] if name.startswith(LR_MULT_PREFIX) else ""
    if digits.isascii() and digits.isdigit() and str(int(digits)) == digits:
        return int(digits)
    return None


def scale_by_layer(scales: Mapping[str, Any]) -> optax.GradientTransformation:
    """Multiply each layer's update by its own (possibly traced) factor.

    .. math::

      u^{l}_{p} \\leftarrow c_{l,p} \\, u^{l}_{p}

    for every parameter p of layer l (a top-level entry of the parameter dict).

    Args:
      scales: layer name -> one factor for all its parameters, or a mapping parameter name
        (e.g. ``"kernel"``, ``"bias"``) -> factor. Layers and parameters not named keep their
        update.

    Returns:
      A stateless ``optax.GradientTransformation``.

    Example:
      >>> import jax.numpy as jnp
      >>> tx = scale_by_layer({"layer_0": 2.0, "layer_1": {"kernel": 0.5}})
      >>> one = {"kernel": jnp.ones(2), "bias": jnp.ones(1)}
      >>> out, _ = tx.update({"layer_0": one, "layer_1": one}, optax.EmptyState())
      >>> [float(out[k][p][0]) for k in ("layer_0", "layer_1") for p in ("kernel", "bias")]
      [2.0, 2.0, 0.5, 1.0]
    """

    def times(factor: Any, tree: Any) -> Any:
        return jax.tree.map(lambda u: u * jnp.asarray(factor, u.dtype), tree)

    def scale(name: str, tree: Any) -> Any:
        factor = scales.get(name)
        if factor is None:
            return tree
        if not isinstance(factor, Mapping):
            return times(factor, tree)
        return {p: times(factor[p], v) if p in factor else v for p, v in tree.items()}

    def update_fn(updates, state, params=None):
        del params
        return {name: scale(name, tree) for name, tree in updates.items()}, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def layer_scales(
    hparams: Mapping[str, Any],
    layers: Sequence[str],
    layer_lr: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """The factors :func:`scale_by_layer` applies: layer l's ``lr_mult_l`` (from ``hparams``)
    times the parametrization's multiplier of each of its parameters (``layer_lr``); factors
    that are 1 are left out, so the result is empty when every factor is 1.

    Raises:
      ValueError: an ``lr_mult_l`` for a layer that ``layers`` does not have.
    """
    for name in hparams:
        index = layer_lr_axis(name)
        if index is not None and index >= len(layers):
            raise ValueError(f"{name}: the model has {len(layers)} layers (0 to {len(layers) - 1})")
    out: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        static = {p: c for p, c in (layer_lr or {}).get(layer, {}).items() if c != 1.0}
        mult = hparams.get(f"{LR_MULT_PREFIX}{i}")
        if mult is None:
            if static:
                out[layer] = static
        elif static:  # a parametrized layer: its parameters are named in layer_lr
            out[layer] = {p: mult * static.get(p, 1.0) for p in layer_lr[layer]}
        else:
            out[layer] = mult
    return out


def check_layer_rate_axes(grid: Mapping[str, Any], num_layers: int) -> None:
    """Raise :class:`~gradlab.errors.ConfigError` for an ``lr_mult_l`` axis of a layer l the
    model lacks (``num_layers`` layers, 0 the input side)."""
    for name in grid:
        index = layer_lr_axis(name)
        if index is not None and index >= num_layers:
            raise fail(
                f"grid.{name}",
                f"the model has {num_layers} layers (lr_mult_0 to lr_mult_{num_layers - 1}, "
                "0 the input side)",
            )


def check_layer_rates(
    grid: Mapping[str, Any],
    optimizers: Sequence[Any],
    metrics: Sequence[str],
    *,
    num_layers: int | None,
    mup: bool,
    off_base: Sequence[str] = (),
) -> None:
    """Validate a sweep's per-layer learning rates before anything is compiled.

    Args:
      grid: the grid axes.
      optimizers: the chains (strings or callables).
      metrics: the metric sets.
      num_layers: the model's number of layers when the spec knows it (a ``ModelSpec``);
        ``None`` for a user's module (the plan checks it then).
      mup: whether the parametrization is μP (which scales layers by the chain's kind).
      off_base: the fields that put μP away from its base width (e.g. ``"model.hidden[1]"``),
        where its per-layer factors differ from 1.

    Raises:
      ConfigError: ``lr_mult_*`` axes or μP with a callable chain, an ``lr_mult_l`` for a
        missing layer, or the curvature sets with per-layer learning rates.
    """
    axes = [name for name in grid if layer_lr_axis(name) is not None]
    callables = [i for i, c in enumerate(optimizers) if not isinstance(c, str)]
    if axes and callables:
        raise fail(
            f"grid.{axes[0]}",
            f"optimizers[{callables[0]}] is a callable chain, which cannot take per-layer "
            "learning rates: use chain strings, or scale the layers inside the callable",
        )
    if mup and callables:
        raise fail(
            f"optimizers[{callables[0]}]",
            "parametrization 'mup' scales each layer's learning rate by the chain's kind "
            "(SGD- or Adam-like), which a callable chain does not have: use chain strings",
        )
    if num_layers is not None:
        check_layer_rate_axes(grid, num_layers)
    layered = [*axes, *(off_base if mup else ())]
    for m in ("sharpness", "precond_sharpness"):
        if m in metrics and layered:
            raise fail(
                "metrics",
                f"{m!r} is measured against the edge of stability of one learning rate "
                "for every parameter, and this sweep gives layers their own learning rates "
                f"({layered[0]}: an lr_mult axis, or μP away from its base width)",
            )
