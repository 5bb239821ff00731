"""Parametrizations of the MLP: how initialisation, forward multipliers and learning rates
scale with width (SP, NTK, μP, mean field).

A dense layer computes h = m·(x W) + b: W is the stored kernel, drawn with standard deviation
σ (then multiplied by the sweep's ``init_scale``), m its forward multiplier, and the optimizer
multiplies the layer's update by a learning-rate multiplier (one for the kernel, one for the
bias) that depends on whether the chain is *SGD-like* (the update is linear in the gradient:
sgd, momentum, nesterov) or *Adam-like* (the update normalises the gradient entrywise: adam,
adamw, rmsprop, adagrad); see :func:`gradlab.optim.update_kind`.

**Layer kinds.** A layer's fan-in and fan-out are each either a *width* (a hidden layer's size,
which grows with the network) or *fixed* (the data dimension, the number of outputs):

* ``input``: layer 0, data -> width;  ``hidden``: width -> width;  ``output``: width -> outputs;
* ``linear``: the one layer of a linear model (``hidden=()``), fixed -> fixed.

**Width ratios.** The μP base model has every hidden layer ``base_width`` wide. For a layer
whose fan-in is a width, r_in = fan_in / base_width (else r_in = 1); likewise r_out =
fan_out / base_width when the fan-out is a width. Hidden widths may differ per layer: each
layer reads the widths it connects (so layer l's r_in is layer l−1's r_out).

**The init scheme** (``ModelSpec.init``, std s(fan_in, fan_out), :mod:`gradlab.inits`) gives
the SP standard deviation; a parametrization rescales it. Under μP it is evaluated at the base
model's shape (s_b = s(base_in, base_out), each width replaced by ``base_width``), so μP draws
exactly what SP draws at ``width == base_width``; under NTK the effective weight m·W has the
scheme's std, so NTK computes the same function as SP at init. ``init_scale`` multiplies σ in
every parametrization.

**The table** (σ: std of the stored kernel; m: forward multiplier of x W; η_k, η_b: learning-
rate multipliers of kernel and bias; the bias is never multiplied by m):

===========  ===============  =============  =================  =================  ===========
kind         σ                m              SGD-like η_k, η_b  Adam-like η_k      Adam η_b
===========  ===============  =============  =================  =================  ===========
SP, any      s                1              1, 1               1                  1
NTK, any     s·√fan_in        1/√fan_in      1, 1               1                  1
μP input     s_b              1              r_out, r_out       1                  1
μP hidden    s_b/√r_in        1              r_out/r_in, r_out  1/r_in             1
μP output    s_b              1/r_in         r_in, 1            1                  1
μP linear    s                1              1, 1               1                  1
MF input     s·√fan_in        g/√fan_in      1, 1               1                  1
MF hidden    s·√fan_in        g/√fan_in      1, 1               1                  1
MF output    s·√fan_in        1/fan_in       1, 1               1                  1
MF linear    s·√fan_in        1/fan_in       1, 1               1                  1
===========  ===============  =============  =================  =================  ===========

μP is the multiplier form of Tensor Programs V that the ``mup`` library implements
(``MuReadout``: output multiplier 1/r_in with the stored init rescaled by √r_in; ``MuSGD``:
vector-like parameters η·r, matrix-like η·r_out/r_in; ``MuAdam``: matrix-like η/r_in; hidden
weights keep the scheme's fan-in init). Absorbing the output multiplier into the weight
(W_eff = W/r_in: std s_b/r_in, SGD rate η·r_in/r_in² = η/r_in, Adam rate η/r_in) gives Table 3
of the paper: input weights and all biases: Var 1/fan_in, SGD η·fan_out, Adam η; output
weights: Var 1/fan_in², SGD η/fan_in, Adam η/fan_in; hidden weights: Var 1/fan_in, SGD η, Adam
η/fan_in (as ratios to the base model; the library's r_out/r_in for a hidden kernel under SGD
is the paper's η when fan-in and fan-out grow together). At ``width == base_width`` every
ratio is 1 and μP is SP exactly (the multipliers are then skipped, so the program is SP's).

NTK is Jacot et al.'s: unit-variance kernels for ``init="lecun_normal"`` or ``"normal"`` (in
general s·√fan_in) and each layer's x W scaled by 1/√fan_in, the biases unscaled (β = 1); its
learning rates are the chain's own. ``base_width`` is read only by μP.

The mean-field parametrization (MF, ``"mean_field"``) is the one of Sohl-Dickstein 2024's
fractal trainability boundary (the reference code's ``net``): unit-variance stored kernels
(``init="normal"`` draws W ~ N(0, 1) exactly), each hidden-side layer computes
g·(x W)/√fan_in, and the readout divides by its fan-in, f = (x W)/fan_in (the 1/n of the
mean-field limit of Mei, Montanari & Nguyen 2018 and Chizat & Bach 2018, where the readout
averages over the hidden units). The gain g is the reference's: √2 for every activation but
``"linear"`` (g = 1): it computes tanh(√2·z) and √2·relu(z) = relu(√2·z). The learning rates
are the chain's own in every layer (the paper sweeps the input and output layers' rates as
the axes of its images, ``lr_mult_0`` and ``lr_mult_1`` here). One difference in units: the
reference's loss is mean((f − y)²), gradlab's ``"mse"`` is half that, so a gradlab learning
rate 2η takes the reference's steps at η (the images are shifted by log10 2).

Biases: zero unless ``init="torch_linear"`` (U(±1/√fan_in), read at the base fan-in under μP,
as ``mup.layer.rescale_linear_bias`` does) or ``bias_std`` > 0 (N(0, bias_std²), the same at
every width, as μP's biases are Θ(1)).

Not modelled: μP's rescaling of Adam's ε and of weight decay. ``adamw``'s decay is applied
inside the chain, before the layer's learning-rate multiplier, so it is scaled with it (the
``mup`` library's ``decoupled_wd=True``).

References:
  Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen, Gao, "Tensor Programs V:
  Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", 2022 (Table 3, and
  the ``mup`` library: github.com/microsoft/mup, ``mup/layer.py``, ``mup/optim.py``).
  Yang & Hu, "Feature Learning in Infinite-Width Neural Networks" (Tensor Programs IV), 2021.
  Jacot, Gabriel, Hongler, "Neural Tangent Kernel: Convergence and Generalization in Neural
  Networks", 2018.
  Sohl-Dickstein, "The boundary of neural network trainability is fractal", 2024,
  arXiv:2402.06184 (code: github.com/Sohl-Dickstein/fractal, the notebook's ``net`` and
  ``init``).
  Mei, Montanari, Nguyen, "A mean field view of the landscape of two-layer neural networks",
  PNAS 2018; Chizat & Bach, "On the global convergence of gradient descent for
  over-parameterized models using optimal transport", 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from gradlab.inits import init_std

__all__ = [
    "PARAMETRIZATIONS",
    "UPDATE_KINDS",
    "LayerRule",
    "layer_kinds",
    "layer_rule",
    "mean_field_gain",
    "mlp_rules",
]

PARAMETRIZATIONS = ("sp", "ntk", "mup", "mean_field")
UPDATE_KINDS = ("sgd", "adam")  # SGD-like and Adam-like chains (gradlab.optim.update_kind)


class LayerRule(NamedTuple):
    """How one dense layer is initialised, scaled and trained (one row of the table).

    Attributes:
      kind: ``"input"``, ``"hidden"``, ``"output"`` or ``"linear"``.
      init_factor: multiplies the scheme's draw at the layer's own shape (1.0: the draw as is).
      std: the stored kernel's standard deviation at ``init_scale = 1`` (the scheme's std times
        ``init_factor``).
      multiplier: m in h = m·(x W) + b.
      bias_fan_in: the fan-in the scheme's bias init reads (``torch_linear``).
      lr_sgd: (kernel, bias) learning-rate multipliers for SGD-like chains.
      lr_adam: (kernel, bias) learning-rate multipliers for Adam-like chains.
    """

    kind: str
    init_factor: float
    std: float
    multiplier: float
    bias_fan_in: int
    lr_sgd: tuple[float, float]
    lr_adam: tuple[float, float]

    def lr(self, update_kind: str) -> tuple[float, float]:
        """The (kernel, bias) learning-rate multipliers for ``"sgd"``- or ``"adam"``-like chains."""
        if update_kind not in UPDATE_KINDS:
            raise ValueError(f"unknown update kind {update_kind!r}; valid: {UPDATE_KINDS}")
        return self.lr_sgd if update_kind == "sgd" else self.lr_adam


def layer_kinds(num_layers: int) -> tuple[str, ...]:
    """The kind of each of ``num_layers`` dense layers of an MLP, input side first."""
    if num_layers < 1:
        raise ValueError(f"an MLP has at least one layer, got {num_layers}")
    if num_layers == 1:
        return ("linear",)
    return ("input", *["hidden"] * (num_layers - 2), "output")


def mean_field_gain(activation: str) -> float:
    """The gain g of the mean-field hidden-side multiplier g/√fan_in: 1 for ``"linear"``, else
    √2 (Sohl-Dickstein 2024's reference code, for tanh and relu alike)."""
    return 1.0 if activation == "linear" else math.sqrt(2.0)


def layer_rule(
    parametrization: str,
    init: str,
    kind: str,
    fan_in: int,
    fan_out: int,
    base_width: int | None = None,
    activation: str = "linear",
) -> LayerRule:
    """The row of the module docstring's table for one layer.

    Args:
      parametrization: ``"sp"``, ``"ntk"``, ``"mup"`` or ``"mean_field"``.
      init: the init scheme (:data:`gradlab.inits.INITS`), which gives the SP std.
      kind: ``"input"``, ``"hidden"``, ``"output"`` or ``"linear"`` (:func:`layer_kinds`).
      fan_in, fan_out: the layer's shape.
      base_width: the width of the μP base model's hidden layers (μP only).
      activation: the MLP's activation, which sets the mean-field gain g
        (:func:`mean_field_gain`; mean field only).

    Returns:
      A :class:`LayerRule`.

    Example:
      >>> rule = layer_rule("mup", "lecun_normal", "output", 256, 10, base_width=64)
      >>> rule.multiplier, rule.lr("sgd"), rule.lr("adam")
      (0.25, (4.0, 1.0), (1.0, 1.0))
    """
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {parametrization!r}; valid: {PARAMETRIZATIONS}")
    if kind not in ("input", "hidden", "output", "linear"):
        raise ValueError(f"unknown layer kind {kind!r}")
    s = init_std(init, fan_in, fan_out)
    ones = (1.0, 1.0)
    if parametrization == "sp" or (parametrization == "mup" and kind == "linear"):
        return LayerRule(kind, 1.0, s, 1.0, fan_in, ones, ones)
    if parametrization == "ntk":
        root = math.sqrt(fan_in)
        return LayerRule(kind, root, s * root, 1 / root, fan_in, ones, ones)
    if parametrization == "mean_field":
        root = math.sqrt(fan_in)
        readout = kind in ("output", "linear")
        multiplier = 1 / fan_in if readout else mean_field_gain(activation) / root
        return LayerRule(kind, root, s * root, multiplier, fan_in, ones, ones)
    if base_width is None or base_width <= 0:
        raise ValueError(f"parametrization 'mup' needs a positive base_width, got {base_width}")
    in_is_width, out_is_width = kind in ("hidden", "output"), kind in ("input", "hidden")
    base_in = base_width if in_is_width else fan_in
    base_out = base_width if out_is_width else fan_out
    r_in, r_out = fan_in / base_in, fan_out / base_out
    # s_b / s is exactly 1.0 at the base shape (the same call twice), so μP draws SP's numbers.
    factor = init_std(init, base_in, base_out) / s
    if kind == "input":
        return LayerRule(kind, factor, s * factor, 1.0, base_in, (r_out, r_out), ones)
    if kind == "hidden":
        factor /= math.sqrt(r_in)
        return LayerRule(
            kind, factor, s * factor, 1.0, base_in, (r_out / r_in, r_out), (1 / r_in, 1.0)
        )
    return LayerRule(kind, factor, s * factor, 1 / r_in, base_in, (r_in, 1.0), ones)


def mlp_rules(
    parametrization: str,
    init: str,
    widths: Sequence[int],
    base_width: int | None = None,
    activation: str = "linear",
) -> tuple[LayerRule, ...]:
    """The :class:`LayerRule` of every layer of an MLP with layer sizes ``widths``
    (``(d_in, *hidden, num_outputs)``), input side first (``activation``: the mean-field
    gain's)."""
    kinds = layer_kinds(len(widths) - 1)
    return tuple(
        layer_rule(parametrization, init, kind, fan_in, fan_out, base_width, activation)
        for kind, fan_in, fan_out in zip(kinds, widths[:-1], widths[1:], strict=True)
    )
