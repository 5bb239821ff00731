"""The static facts of one group's program: the :class:`Config` the engine compiles against.

A group (one optimizer chain and one value of each static grid axis) is one compiled program;
everything about it that is not a traced value — the Flax module, the chain, the loss, the
layers and their sizes, the steps and their cadences, the metric sets, the precision, the
parametrization's learning-rate multipliers — is a field of a frozen :class:`Config`, made once
by :func:`make_config` from the spec, the group and the data. :mod:`gradlab.engine.program`
binds its functions to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from gradlab import losses, models, optim, schema
from gradlab import metrics as M
from gradlab.engine import cache, platform

__all__ = ["Config", "layer_sizes", "layer_widths", "make_config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """The static facts of one group's program (everything that is not a traced value)."""

    module: Any  # the Flax module
    chain: Any  # chain string or callable
    loss: str
    classification: bool
    layers: tuple[str, ...]  # top-level parameter names, input side first
    layer_sizes: tuple[int, ...]  # parameters per layer (kernel and bias), in that order
    num_layers: int  # length of the ``layer`` dim
    perturbations: Any  # shapes of the "perturbations" collection (the backward signals)
    batch: int | None  # examples per step; None: full batch
    n_train: int
    batch_shape: tuple[int, int]  # the input of one step
    steps: int
    log_every: int
    per_seed_order: bool
    divergence_factor: float
    divergence_floor: float  # the loss of all-zero outputs (see divergence_reference)
    schedule: str
    warmup_steps: int
    record_all: bool  # the default metric set
    curvature_sets: tuple[str, ...]  # see gradlab.engine.measure
    sharpness_every: int
    sharpness_iters: int
    data_seed: int
    transpose_kernels: bool  # see platform.kernel_storage
    # The parametrization's learning-rate multipliers, layer -> parameter -> factor (None: 1).
    layer_lr: Any = None
    progress_every: int = 0  # blocks between progress reports; 0: no callback in the program
    initial_sharpness: bool = False  # measure λ₀ = λ_max(∇²L(θ_0)) on the training set
    lr_units: str = "absolute"  # "sharpness": the learning_rate hyperparameter is c, η = c/λ₀
    dtype: str = "float32"  # the grid's dtype axis: see param_dtype and compute_dtype
    # Also return θ_t at every logged step ("params", stacked on a leading step axis) and θ
    # after training ("final_params"), in the model's layout (gradlab.engine.replay).
    snapshot: bool = False
    keep_final_params: bool = False  # also return "final_params" (gl.run(save_params=True))

    @property
    def param_dtype(self) -> Any:
        """The dtype of the parameters, the optimizer state and the loss: float64 for a
        ``float64`` program, else float32 (``bfloat16`` is mixed precision)."""
        return jnp.float64 if self.dtype == "float64" else jnp.float32

    @property
    def compute_dtype(self) -> Any:
        """The dtype the network's forward and backward passes compute in."""
        return {"float32": jnp.float32, "float64": jnp.float64, "bfloat16": jnp.bfloat16}[
            self.dtype
        ]

    @property
    def n_signals(self) -> int:
        return len(jax.tree.leaves(self.perturbations))

    @property
    def tolerant(self) -> bool:
        return optim.tolerates_nonfinite(self.chain)

    @property
    def storage(self) -> Callable[[Any], Any]:
        return platform.kernel_storage(self.transpose_kernels)


def make_config(spec: Any, group: Any, dataset: Any, steps: int) -> Config:
    """The :class:`Config` of ``group`` (a :class:`gradlab.engine.plan.Group`) of ``spec``."""
    classification = dataset.num_classes is not None
    num_outputs = dataset.num_classes if classification else dataset.y_train.shape[-1]
    overrides = {k: v for k, v in group.static.items() if k != "batch_size"}
    module = models.make_model(spec.model, num_outputs, **overrides)
    batch = group.static.get("batch_size", spec.batch_size)
    n_train = dataset.x_train.shape[0]
    batch_shape = (n_train if batch is None else batch, dataset.x_train.shape[1])
    variables = cache.variable_shapes(module, batch_shape)
    layers = tuple(models.layer_names(variables["params"]))
    perturbations = variables.get("perturbations", {})
    return Config(
        module=module,
        chain=group.chain,
        loss=spec.loss,
        classification=classification,
        layers=layers,
        layer_sizes=tuple(
            sum(leaf.size for leaf in jax.tree.leaves(variables["params"][n])) for n in layers
        ),
        num_layers=max(len(layers), len(jax.tree.leaves(perturbations))),
        perturbations=perturbations,
        batch=batch,
        n_train=n_train,
        batch_shape=batch_shape,
        steps=steps,
        log_every=spec.log_every,
        per_seed_order=spec.batch_order == "per_seed" and batch is not None,
        divergence_factor=spec.divergence_factor,
        divergence_floor=losses.zero_output_loss(spec.loss, dataset.y_train, num_outputs),
        schedule=spec.schedule,
        warmup_steps=spec.warmup_steps,
        record_all="default" in spec.metrics,
        curvature_sets=tuple(m for m in schema.CURVATURE_SETS if m in spec.metrics),
        sharpness_every=spec.sharpness_every,
        sharpness_iters=spec.sharpness_iters,
        data_seed=spec.data_seed,
        transpose_kernels=optim.ignores_layout(group.chain) and isinstance(module, models.MLP),
        initial_sharpness="initial_sharpness" in spec.metrics,
        lr_units=spec.lr_units,
        dtype=group.static.get("dtype", "float32"),
        layer_lr=models.layer_lr_multipliers(
            module, dataset.x_train.shape[1], optim.update_kind(group.chain)
        ),
    )


def layer_widths(cfg: Config) -> list[int]:
    """The width of each layer's pre-activation h^l (0 where the model records no signal)."""
    widths = [int(h.shape[-1]) for h in M.flat_signals(cfg.perturbations)]
    return widths + [0] * (cfg.num_layers - len(widths))


def layer_sizes(cfg: Config) -> list[int]:
    """The number of parameters of each layer (0 for a signal without parameters)."""
    return [int(n) for n in cfg.layer_sizes] + [0] * (cfg.num_layers - len(cfg.layer_sizes))
