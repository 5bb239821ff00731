"""The sweep specification: what to train, on what, with which optimizer chains, over which grid.

A :class:`SweepSpec` is plain data. It is validated completely when it is built (from Python or
from TOML), so a bad field raises :class:`ConfigError` naming the field before anything is
compiled or written. This module knows nothing of JAX compilation.

Grid axes come in two kinds:

* **traced** axes (``seed``, ``learning_rate``, ``init_scale``, ``bias_std``, ``clip_norm``, ...)
  become arrays inside one vmapped, compiled program: changing their values never recompiles;
* **static** axes (``activation``, ``init``, ``batch_size``, ``width``, ``depth``, ``dtype``)
  change the compiled program, so each value (like each optimizer chain) is its own *group*
  with its own compilation. ``width`` sets every hidden layer's width and ``depth`` the number
  of hidden layers (:meth:`ModelSpec.hidden_for`); per-layer results of shallower models are
  NaN past their last layer, and the ``layer_width``/``layer_size`` coordinates get these dims.
  ``dtype`` is the precision a program computes in: ``float32``, ``float64`` (that program only;
  the process stays in float32) or ``bfloat16`` (mixed precision: bfloat16 forward and backward
  passes, float32 parameters and optimizer state). Every recorded value is float32.

The per-layer learning rates ``lr_mult_0``, ``lr_mult_1``, ... (layer 0 the input side) are
traced optimizer axes that every chain string reads (:mod:`gradlab.optim`); a callable chain
cannot take them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gradlab.activations import ACTIVATIONS
from gradlab.data import DATASETS
from gradlab.errors import ConfigError, fail
from gradlab.grid import (
    DTYPES,
    MODEL_AXES,
    STATIC_AXES,
    STRUCTURE_AXES,
    check_axis_values,
    expand_axis,
    is_int,
    is_real,
)
from gradlab.inits import INITS
from gradlab.layer_rates import check_layer_rates, layer_lr_axis
from gradlab.losses import LOSSES, Z_LOSS_LOSSES
from gradlab.optim import SCHEDULES
from gradlab.parametrizations import PARAMETRIZATIONS
from gradlab.schema import METRIC_SETS

BATCH_ORDERS = ("shared", "per_seed")
LR_UNITS = ("absolute", "sharpness")

__all__ = [
    "DTYPES",
    "MODEL_AXES",
    "STATIC_AXES",
    "STRUCTURE_AXES",
    "ConfigError",
    "DataSpec",
    "ModelSpec",
    "SweepSpec",
    "expand_axis",
]


def _is_regression(data: Any) -> bool:
    """Whether the data are regression targets, as far as the spec can tell before loading."""
    if isinstance(data, DataSpec):
        if data.name == "gaussian":  # Gaussian inputs and Gaussian targets
            return True
        return data.name == "teacher" and data.options.get("task") == "regression"
    return getattr(data, "num_classes", 0) is None


def _check_positive_int(field: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not is_int(value) or value <= 0:
        raise fail(field, f"must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A multilayer perceptron built by :func:`gradlab.models.make_model`.

    Attributes:
      hidden: hidden-layer widths, input side first; ``()`` is a linear model.
      activation: name of the elementwise nonlinearity (see ``gradlab.activations.ACTIVATIONS``);
        ``"linear"`` is the identity.
      init: kernel init scheme; ``init_scale`` (a grid axis) multiplies its standard deviation,
        so ``init="normal"`` with ``init_scale=σ_w`` is the mean-field W ~ N(0, σ_w²/fan_in).
      use_bias: whether dense layers have biases (drawn from N(0, bias_std²); 0 = zero biases).
      num_outputs: output width; ``None`` takes the number of classes (or regression targets).
      parametrization: how init, forward multipliers and per-layer learning rates scale with
        width (the table in :mod:`gradlab.parametrizations`): ``"sp"`` (standard: the init
        scheme as it is), ``"ntk"`` (Jacot et al. 2018: each layer's x W scaled by 1/√fan_in,
        the kernel's std by √fan_in), ``"mup"`` (Tensor Programs V; needs ``base_width``).
        The init scheme gives the SP std (under μP at the base model's shape); ``init_scale``
        multiplies the std in every parametrization.
      base_width: μP's base model has every hidden layer this wide; layer l's width ratio is
        its fan-in (or fan-out) over ``base_width``, and at ``hidden`` all equal to it μP is
        SP exactly. Read only by μP.
    """

    hidden: tuple[int, ...] = (10, 10)
    activation: str = "relu"
    init: str = "lecun_normal"
    use_bias: bool = True
    num_outputs: int | None = None
    parametrization: str = "sp"
    base_width: int | None = None

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise fail("model.hidden", f"must be a list of positive integers, got {hidden!r}")
        for i, width in enumerate(hidden):
            if not is_int(width) or width <= 0:
                raise fail(f"model.hidden[{i}]", f"must be a positive integer, got {width!r}")
        object.__setattr__(self, "hidden", tuple(int(w) for w in hidden))
        if self.activation not in ACTIVATIONS:
            raise fail(
                "model.activation",
                f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}",
            )
        if self.init not in INITS:
            raise fail("model.init", f"unknown init {self.init!r}; valid: {', '.join(INITS)}")
        if not isinstance(self.use_bias, bool):
            raise fail("model.use_bias", f"must be true or false, got {self.use_bias!r}")
        _check_positive_int("model.num_outputs", self.num_outputs, allow_none=True)
        if self.parametrization not in PARAMETRIZATIONS:
            raise fail(
                "model.parametrization",
                f"unknown parametrization {self.parametrization!r}; "
                f"valid: {', '.join(PARAMETRIZATIONS)}",
            )
        _check_positive_int("model.base_width", self.base_width, allow_none=True)
        if self.parametrization == "mup" and self.base_width is None:
            raise fail(
                "model.base_width",
                "parametrization 'mup' needs the hidden width of its base model (base_width), "
                "at which it trains exactly as 'sp'",
            )

    def hidden_for(self, width: int | None = None, depth: int | None = None) -> tuple[int, ...]:
        """The hidden widths at a point of the ``width`` and ``depth`` grid axes.

        ``width`` sets every hidden layer's width, ``depth`` the number of hidden layers (each
        as wide as ``width``, else as the model's hidden layers, which must then share one
        width); ``None`` keeps the model's own.
        """
        hidden = self.hidden
        if depth is not None:
            hidden = (width or (hidden[0] if hidden else 1),) * depth
        if width is not None:
            hidden = (width,) * len(hidden)
        return hidden


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """Which data set to train on (see :func:`gradlab.data.load`).

    Attributes:
      name: ``"mnist"``, ``"digits"``, ``"mnist1d"`` or ``"teacher"``.
      n_train: use the first ``n_train`` training examples (``None``: all).
      n_test: use the first ``n_test`` test examples (``None``: all).
      seed: seed of generated data sets (``mnist1d``, ``teacher``).
      data_dir: where data files live (``None``: ``$GRADLAB_DATA`` or ``~/.cache/gradlab``).
      options: loader-specific keyword arguments (e.g. ``{"task": "regression"}`` for teacher).
    """

    name: str = "mnist"
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0
    data_dir: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise fail("data.name", f"unknown data set {self.name!r}; valid: {', '.join(DATASETS)}")
        _check_positive_int("data.n_train", self.n_train, allow_none=True)
        if self.n_test is not None and (not is_int(self.n_test) or self.n_test < 0):
            raise fail("data.n_test", f"must be a non-negative integer, got {self.n_test!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise fail("data.seed", f"must be a non-negative integer, got {self.seed!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise fail("data.data_dir", f"must be a path string, got {self.data_dir!r}")
        if not isinstance(self.options, Mapping):
            raise fail("data.options", f"must be a table of loader options, got {self.options!r}")
        object.__setattr__(self, "options", dict(self.options))


Chain = str | Callable[[Mapping[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A sweep: every optimizer chain x every point of the grid, trained at once.

    Attributes:
      model: a :class:`ModelSpec`, or a user's ``flax.linen.Module`` (its per-layer signals then
        come from what it ``perturb``s; see :mod:`gradlab.models`).
      data: a :class:`DataSpec` or a ``gradlab.data.Dataset`` of arrays.
      loss: ``"cross_entropy"`` (softmax, integer labels) or ``"mse"`` (½‖f(x)−y‖² summed over
        outputs, mean over examples; class labels become one-hot). A ``z_loss`` grid axis adds
        z·(log Σ exp logits)² to the cross-entropy (:func:`gradlab.losses.objective`); it is
        refused with ``"mse"``.
      optimizers: chain strings ``"stage|stage|..."`` (see :mod:`gradlab.optim`) or callables
        ``hparams -> optax.GradientTransformation``.
      grid: axis name -> list of values (or ``{"logspace": [a, b, n]}`` /
        ``{"linspace": [a, b, n]}``). The sweep is the Cartesian product.
      steps: number of optimizer steps; or give ``epochs`` (steps = epochs x batches per epoch).
      epochs: number of passes over the training set (the last partial batch is dropped).
      batch_size: examples per step; ``None`` is full-batch gradient descent.
      metrics: metric sets: ``"default"`` (every per-step and per-layer metric), ``"none"``
        (loss only), plus ``"sharpness"``, ``"precond_sharpness"``, ``"hessian_trace"``,
        ``"per_example"`` and ``"feature_change"`` (each layer's pre-activation change since
        initialisation, for the coordinate check).
      log_every: record per-step metrics every this many steps (divergence is checked every step).
      sharpness_every: cadence (steps) of the curvature metrics.
      sharpness_iters: Lanczos iterations per curvature measurement.
      divergence_factor: a run diverges when its loss exceeds this times its initial loss (or any
        loss/gradient is non-finite).
      schedule: learning-rate schedule: ``"constant"``, ``"cosine"`` (decay to 0 over training),
        ``"warmup_cosine"`` or ``"warmup_constant"`` (linear warmup over ``warmup_steps``).
      warmup_steps: length of the linear warmup.
      batch_order: ``"shared"`` (every run sees the same batches, drawn from ``data_seed``) or
        ``"per_seed"`` (each run shuffles with its own ``seed``).
      data_seed: seed of the shared batch order.
      lr_units: ``"absolute"`` (the grid's learning rates are η) or ``"sharpness"``: the
        ``learning_rate`` axis holds c and each run trains at η = c/λ₀, with λ₀ its own
        sharpness at initialisation (λ_max(∇²L(θ_0)) on the full training set, by Lanczos
        with ``sharpness_iters`` steps, inside the compiled program); full-batch GD on a
        quadratic is then stable exactly for c < 2. Implies the ``initial_sharpness`` metric
        set (λ₀ is recorded per run).
    """

    model: ModelSpec | Any = dataclasses.field(default_factory=ModelSpec)
    data: DataSpec | Any = dataclasses.field(default_factory=DataSpec)
    loss: str = "cross_entropy"
    optimizers: tuple[Chain, ...] = ("sgd",)
    grid: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = 32
    metrics: tuple[str, ...] = ("default",)
    log_every: int = 1
    sharpness_every: int = 10
    sharpness_iters: int = 20
    divergence_factor: float = 10.0
    schedule: str = "constant"
    warmup_steps: int = 0
    batch_order: str = "shared"
    data_seed: int = 0
    lr_units: str = "absolute"

    def __post_init__(self) -> None:
        from gradlab import optim  # optim reads its stage table only; no compilation happens.

        self._check_model_and_data()
        if self.loss not in LOSSES:
            raise fail("loss", f"unknown loss {self.loss!r}; valid: {', '.join(LOSSES)}")
        if self.loss == "cross_entropy" and _is_regression(self.data):
            raise fail(
                "loss",
                "cross_entropy needs class labels, and the data are regression "
                "targets: use loss = 'mse'",
            )
        optimizers = self.optimizers
        if isinstance(optimizers, str) or callable(optimizers):
            optimizers = (optimizers,)
        if not isinstance(optimizers, Sequence) or not optimizers:
            raise fail("optimizers", "must be a non-empty list of optimizer chains")
        # A chain string's canonical form: its stages without spaces ("clip | adam" is
        # "clip|adam"), so one chain cannot appear under two labels.
        optimizers = tuple(
            "|".join(s.strip() for s in c.split("|")) if isinstance(c, str) else c
            for c in optimizers
        )
        names = [optim.chain_name(c) for c in optimizers]
        if len(set(names)) != len(names):
            raise fail("optimizers", f"duplicate chains in {names}")
        object.__setattr__(self, "optimizers", optimizers)
        reads: set[str] = set(MODEL_AXES)
        open_ended = False
        for i, chain in enumerate(optimizers):
            if callable(chain):
                open_ended = True
                continue
            if not isinstance(chain, str):
                raise fail(f"optimizers[{i}]", f"must be a chain string or callable: {chain!r}")
            try:
                reads.update(optim.chain_hparams(chain))
            except ValueError as err:
                raise fail(f"optimizers[{i}]", str(err)) from None
        self._check_grid(reads, open_ended)
        if "z_loss" in self.grid and self.loss not in Z_LOSS_LOSSES:
            raise fail(
                "grid.z_loss",
                f"the z-loss penalises the softmax normaliser, and loss {self.loss!r} has none: "
                f"use loss = {Z_LOSS_LOSSES[0]!r} or drop the z_loss axis",
            )
        self._check_training()
        self._check_lr_units()
        model = self.model if isinstance(self.model, ModelSpec) else None
        widths = self.grid.get("width", model.hidden if model else ())
        off_base = [f"grid.width = {w}" for w in widths if model and w != model.base_width]
        if "width" not in self.grid and model:
            off_base = [f"model.hidden[{i}]" for i, w in enumerate(widths) if w != model.base_width]
        check_layer_rates(
            self.grid,
            optimizers,
            self.metrics,
            # a depth axis changes the layer count: the plan checks each model then
            num_layers=None if model is None or "depth" in self.grid else len(model.hidden) + 1,
            mup=model is not None and model.parametrization == "mup",
            off_base=off_base,
        )

    # -- validation helpers -------------------------------------------------------------------
    def _check_model_and_data(self) -> None:
        if not isinstance(self.model, ModelSpec):
            import flax.linen as nn  # only to recognise a user's module; nothing is built

            if not isinstance(self.model, nn.Module):
                raise fail("model", f"must be a ModelSpec or a flax.linen.Module: {self.model!r}")
        if not isinstance(self.data, DataSpec):
            fields = ("x_train", "y_train", "x_test", "y_test", "num_classes")
            if not all(hasattr(self.data, f) for f in fields):
                raise fail("data", f"must be a DataSpec or a gradlab.data.Dataset: {self.data!r}")

    def _check_grid(self, reads: set[str], open_ended: bool) -> None:
        if not isinstance(self.grid, Mapping):
            raise fail("grid", f"must be a table of axis -> values, got {self.grid!r}")
        grid: dict[str, tuple[Any, ...]] = {}
        for name, values in self.grid.items():
            field = f"grid.{name}"
            if not isinstance(name, str) or name in ("optimizer", "step", "layer", "run"):
                raise fail(field, "is a reserved dimension name")
            known = name in STATIC_AXES or name in reads or layer_lr_axis(name) is not None
            if not known and not open_ended:
                raise fail(
                    field,
                    "no optimizer stage or model part reads this axis; read here: "
                    + ", ".join(sorted(reads | set(STATIC_AXES)))
                    + ", lr_mult_0, lr_mult_1, ... (per-layer learning rates)",
                )
            grid[name] = expand_axis(field, values)
            check_axis_values(field, name, grid[name])
        object.__setattr__(self, "grid", grid)
        self._check_structure_axes()

    def _check_structure_axes(self) -> None:
        for name in STRUCTURE_AXES:
            if name in self.grid and not isinstance(self.model, ModelSpec):
                raise fail(f"grid.{name}", "needs a ModelSpec (a user's module has its own shape)")
        hidden = self.model.hidden if isinstance(self.model, ModelSpec) else ()
        if "depth" in self.grid and "width" not in self.grid and len(set(hidden)) > 1:
            raise fail(
                "grid.depth",
                f"the model's hidden layers {list(hidden)} differ in width: give one width "
                "(model.hidden = [w]) or a width axis",
            )
        if "width" in self.grid and not hidden and "depth" not in self.grid:
            raise fail("grid.width", "the model has no hidden layer (model.hidden = [])")

    def _check_lr_units(self) -> None:
        if self.lr_units not in LR_UNITS:
            raise fail("lr_units", f"unknown units {self.lr_units!r}; valid: {', '.join(LR_UNITS)}")
        if self.lr_units == "absolute":
            return
        if "learning_rate" not in self.grid:
            raise fail(
                "lr_units",
                "'sharpness' reads the learning_rate grid axis as c (η = c/λ₀): add one",
            )
        for i, chain in enumerate(self.optimizers):
            if not isinstance(chain, str):
                raise fail(
                    f"optimizers[{i}]",
                    "lr_units = 'sharpness' sets the learning rate of chain strings; a callable "
                    "chain has no learning rate gradlab can set",
                )
        if "initial_sharpness" not in self.metrics:
            object.__setattr__(self, "metrics", (*self.metrics, "initial_sharpness"))

    def _check_training(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise fail("steps", "give exactly one of steps= or epochs=")
        _check_positive_int("steps", self.steps, allow_none=True)
        _check_positive_int("epochs", self.epochs, allow_none=True)
        _check_positive_int("batch_size", self.batch_size, allow_none=True)
        metrics = self.metrics
        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(metrics)
        for m in metrics:
            if m not in METRIC_SETS:
                raise fail("metrics", f"unknown metric set {m!r}; valid: {', '.join(METRIC_SETS)}")
        if not metrics:
            raise fail("metrics", "must name at least one metric set (e.g. 'default' or 'none')")
        object.__setattr__(self, "metrics", metrics)
        _check_positive_int("log_every", self.log_every)
        _check_positive_int("sharpness_every", self.sharpness_every)
        _check_positive_int("sharpness_iters", self.sharpness_iters)
        factor = self.divergence_factor
        if not is_real(factor) or not math.isfinite(factor) or factor <= 1:
            raise fail("divergence_factor", f"must be a finite number > 1, got {factor!r}")
        if self.schedule not in SCHEDULES:
            raise fail(
                "schedule", f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}"
            )
        if not is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise fail("warmup_steps", f"must be a non-negative integer: {self.warmup_steps!r}")
        if self.schedule.startswith("warmup") and self.warmup_steps == 0:
            raise fail("warmup_steps", f"schedule {self.schedule!r} needs warmup_steps > 0")
        if self.batch_order not in BATCH_ORDERS:
            raise fail(
                "batch_order",
                f"unknown batch order {self.batch_order!r}; valid: {', '.join(BATCH_ORDERS)}",
            )
        if not is_int(self.data_seed) or self.data_seed < 0:
            raise fail("data_seed", f"must be a non-negative integer, got {self.data_seed!r}")

    # -- derived views ------------------------------------------------------------------------
    @property
    def static_axes(self) -> dict[str, tuple[Any, ...]]:
        """Grid axes that change the compiled program (one group per combination)."""
        return {k: v for k, v in self.grid.items() if k in STATIC_AXES}

    @property
    def traced_axes(self) -> dict[str, tuple[Any, ...]]:
        """Grid axes that are traced arrays inside one compiled program."""
        return {k: v for k, v in self.grid.items() if k not in STATIC_AXES}

    @property
    def num_runs(self) -> int:
        """The runs of the result Dataset: chains x the product of all grid axis lengths (a chain
        trains an axis it does not read once, so it may train fewer; see
        :func:`gradlab.engine.plan.chain_reads`)."""
        return len(self.optimizers) * math.prod(len(v) for v in self.grid.values())

    def shrunk(self, steps: int = 20) -> SweepSpec:
        """A small version of this sweep for smoke tests (``GRADLAB_FAST=1``).

        At most ``steps`` steps, the first two seeds, and at most 512 training / 256 test
        examples; every other axis is kept, so the shape of the result is the same.
        """
        grid = dict(self.grid)
        if "seed" in grid:
            grid["seed"] = grid["seed"][:2]
        data = self.data
        if isinstance(data, DataSpec):
            data = dataclasses.replace(
                data,
                n_train=min(data.n_train or 512, 512),
                n_test=256 if data.n_test is None else min(data.n_test, 256),
            )
        steps = min(steps, self.steps or steps)
        return dataclasses.replace(
            self,
            data=data,
            grid=grid,
            steps=steps,
            epochs=None,
            log_every=min(self.log_every, max(1, steps // 4)),
            sharpness_every=min(self.sharpness_every, max(1, steps // 4)),
            warmup_steps=min(self.warmup_steps, steps // 2) if self.warmup_steps else 0,
        )

    def replace(self, **changes: Any) -> SweepSpec:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def toml(self) -> str:
        """The spec as TOML text (:func:`gradlab.spec_toml.to_toml`), serialised once per spec."""
        from gradlab.spec_toml import to_toml

        return to_toml(self)

    def fingerprint(self) -> str:
        """A hash of everything that determines the results (used to guard run directories)."""
        return hashlib.sha256(self.toml.encode()).hexdigest()[:16]
