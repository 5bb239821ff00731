"""Networks: Flax MLPs built from a :class:`~gradlab.spec.ModelSpec`, their init, and signals.

The forward pass exposes, for every dense layer l (layer 0 is the input side), its
pre-activation h^l = W^l x^{l-1} + b^l in two ways:

* ``self.sow("intermediates", ...)`` records h^l (the forward signal, ``act_rms_layer``);
* ``self.perturb(...)`` adds a zero perturbation to h^l, so the gradient of the loss with respect
  to that perturbation is δ^l = ∂loss/∂h^l (the backward signal, ``delta_rms_layer``), obtained in
  the same backward pass as the parameter gradient.

A user's own ``flax.linen.Module`` works the same way: its per-layer signals are whatever it
``sow``s into ``"intermediates"`` and ``perturb``s, and its layers for per-layer parameter
metrics are the top-level entries of its ``params``; both are ordered by the natural order of
their names (``layer_2`` before ``layer_10``).

Initialisation (:func:`init_params`): the scheme draws W with its standard deviation s(fan_in,
fan_out); ``init_scale`` multiplies every kernel, so the std becomes ``init_scale · s`` (with
``init="normal"``: W ~ N(0, σ_w²/fan_in), the mean-field parametrisation of Poole et al. 2016);
``bias_std`` adds N(0, bias_std²) noise to every bias (0 keeps the module's own bias init:
zeros for :class:`MLP`, except under ``torch_linear``). Both are traced scalars, so one compiled
program serves every value.

Parametrization (``ModelSpec.parametrization``: ``"sp"``, ``"ntk"``, ``"mup"``,
``"mean_field"``): the table of
:mod:`gradlab.parametrizations` says, per layer, the factor on the scheme's draw, the forward
multiplier m in h = m·(x W) + b (applied to the layer's input, as ``mup.MuReadout`` does) and the
learning-rate multipliers the optimizer chain applies (:func:`layer_lr_multipliers`). A factor
or multiplier of exactly 1 is skipped, so SP, and μP at ``width == base_width``, run SP's
program.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gradlab.activations import get_activation
from gradlab.inits import INITS
from gradlab.parametrizations import mlp_rules

if TYPE_CHECKING:
    from gradlab.spec import ModelSpec

__all__ = [
    "MLP",
    "init_params",
    "layer_lr_multipliers",
    "layer_names",
    "make_model",
    "natural_key",
]


def kernel_first_dot(
    inputs: jax.Array,
    kernel: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """``inputs · kernel`` for ``nn.Dense``, computed as ``(kernelᵀ · inputsᵀ)ᵀ``.

    The same products and sums as ``lax.dot_general(inputs, kernel, ...)``; only the order of
    the operands differs, and with it the matrix product XLA emits. Vmapped over runs, the
    kernels form a [runs·out, in] matrix when they are stored [out, in] (the sweep engine does
    that, see ``engine.build_program``); with the kernel as the left operand that matrix is
    used as it lies, and only the small ``inputs`` is transposed. With the kernel on the right
    XLA copies the whole [runs, out, in] array to [in, runs·out] on every step.
    """
    (contract_in, contract_k), batch_dims = dimension_numbers
    if batch_dims != ((), ()):
        raise ValueError(f"kernel_first_dot: batch dimensions {batch_dims} are not supported")
    out = jax.lax.dot_general(
        kernel,
        inputs,
        ((contract_k, contract_in), ((), ())),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return jnp.moveaxis(out, 0, -1)  # [out, *batch] -> [*batch, out]


class MLP(nn.Module):
    """A multilayer perceptron that exposes each layer's pre-activation.

    Attributes:
      hidden: hidden widths (input side first); ``()`` is a linear model.
      num_outputs: width of the output layer (logits or regression outputs).
      activation: elementwise nonlinearity name (``gradlab.activations``).
      init_scheme: kernel init scheme name (:data:`gradlab.inits.INITS`); ``ModelSpec.init``.
      use_bias: whether the dense layers have biases (initialised to zero, or as the init
        scheme says: ``torch_linear`` draws them U(±1/√fan_in)).
      parametrization: ``"sp"``, ``"ntk"``, ``"mup"`` or ``"mean_field"``
        (:mod:`gradlab.parametrizations`; mean field's gain reads ``activation``).
      base_width: the hidden width of the μP base model (μP only).
    """

    hidden: Sequence[int]
    num_outputs: int
    activation: str = "relu"
    init_scheme: str = "lecun_normal"
    use_bias: bool = True
    parametrization: str = "sp"
    base_width: int | None = None

    def rules(self, d_in: int):
        """The :class:`~gradlab.parametrizations.LayerRule` of each layer for inputs of width
        ``d_in``, input side first."""
        widths = (d_in, *self.hidden, self.num_outputs)
        return mlp_rules(
            self.parametrization, self.init_scheme, widths, self.base_width, self.activation
        )

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = get_activation(self.activation)
        scheme = INITS[self.init_scheme]
        widths = (*self.hidden, self.num_outputs)
        for i, (width, rule) in enumerate(zip(widths, self.rules(x.shape[-1]), strict=True)):
            h = nn.Dense(
                width,
                use_bias=self.use_bias,
                kernel_init=scaled_initializer(scheme.initializer, rule.init_factor),
                bias_init=scheme.bias(rule.bias_fan_in),
                dot_general=kernel_first_dot,
                name=f"layer_{i}",
            )(x if rule.multiplier == 1.0 else x * rule.multiplier)
            h = self.perturb(f"preact_{i}", h)
            self.sow("intermediates", f"preact_{i}", h)
            x = act(h) if i < len(self.hidden) else h
        return x


def scaled_initializer(initializer: Any, factor: float) -> Any:
    """A Flax initialiser whose draw is ``factor`` times ``initializer``'s (itself at 1.0)."""
    if factor == 1.0:
        return initializer

    def init(key, shape, dtype=jnp.float32):
        return initializer(key, shape, dtype) * jnp.asarray(factor, dtype)

    return init


def make_model(model: ModelSpec | nn.Module, num_outputs: int, **overrides: Any) -> nn.Module:
    """The Flax module for a :class:`ModelSpec` (a user's module is returned as it is).

    ``overrides`` replace ModelSpec fields: the static grid axes ``activation`` and ``init``, and
    ``width`` and ``depth`` (:meth:`~gradlab.spec.ModelSpec.hidden_for`).
    """
    if isinstance(model, nn.Module):
        return model
    return MLP(
        hidden=model.hidden_for(overrides.get("width"), overrides.get("depth")),
        num_outputs=model.num_outputs or num_outputs,
        activation=overrides.get("activation", model.activation),
        init_scheme=overrides.get("init", model.init),
        use_bias=model.use_bias,
        parametrization=model.parametrization,
        base_width=model.base_width,
    )


def layer_lr_multipliers(
    module: nn.Module, d_in: int, update_kind: str | None
) -> dict[str, dict[str, float]] | None:
    """The parametrization's learning-rate multiplier of every parameter of ``module``.

    Args:
      module: a Flax module; only :class:`MLP` has a parametrization.
      d_in: the width of the inputs.
      update_kind: ``"sgd"`` or ``"adam"`` (:func:`gradlab.optim.update_kind`); ``None`` for
        a chain of unknown kind (a callable), which takes no multipliers.

    Returns:
      Layer name -> {``"kernel"``: η_k, ``"bias"``: η_b} (the table of
      :mod:`gradlab.parametrizations`), or ``None`` where every multiplier is 1 (SP, μP at its
      base width, a user's module).

    Raises:
      ValueError: the parametrization has multipliers other than 1 and ``update_kind`` is None.
    """
    if not isinstance(module, MLP):
        return None
    rules = module.rules(d_in)
    if all(r.lr_sgd == r.lr_adam == (1.0, 1.0) for r in rules):
        return None
    if update_kind is None:
        raise ValueError(
            f"parametrization {module.parametrization!r} scales each layer's learning rate, "
            "which needs a chain string (a callable chain's kind is unknown)"
        )
    return {
        f"layer_{i}": dict(zip(("kernel", "bias"), r.lr(update_kind), strict=True))
        for i, r in enumerate(rules)
    }


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers numerically (``layer_2`` < ``layer_10``)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def layer_names(tree: dict[str, Any]) -> list[str]:
    """The top-level names of a params/signals dict in layer order (natural sort)."""
    return sorted(tree, key=natural_key)


def init_params(
    module: nn.Module,
    key: jax.Array,
    x_example: jax.Array,
    init_scale: jax.Array | float = 1.0,
    bias_std: jax.Array | float | None = None,
) -> dict[str, Any]:
    """Initialise ``module``'s parameters with the kernel std scaled by ``init_scale``.

    Args:
      module: the Flax module.
      key: PRNG key of this run (from its seed).
      x_example: an input batch (only its shape matters).
      init_scale: multiplies every ``kernel`` leaf (so its std is ``init_scale`` x the scheme's).
      bias_std: standard deviation of Gaussian noise added to every ``bias`` leaf (``None``:
        none is drawn, the module's own bias init stands).

    Returns:
      The ``params`` collection.
    """
    init_key, bias_key = jax.random.split(key)
    params = module.init(init_key, x_example)["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        name = getattr(path[-1], "key", None)
        if name == "kernel":
            leaf = leaf * jnp.asarray(init_scale, leaf.dtype)
        elif name == "bias" and bias_std is not None:
            noise = jax.random.normal(jax.random.fold_in(bias_key, i), leaf.shape, leaf.dtype)
            leaf = leaf + jnp.asarray(bias_std, leaf.dtype) * noise
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)
