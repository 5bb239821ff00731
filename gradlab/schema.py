"""The result schema: every variable of a result Dataset, once.

A result Dataset (``gl.run``, ``gl.load``) has the dims ``optimizer``, every grid axis by its
own name (in the order the grid gives them), then ``step`` (the logged steps) and ``layer``
(0 is the input side) where a variable has them. This module says, for each variable, which of
``step``/``layer`` it has, what it means, its unit, whether higher is better, and which metric
set produces it. The engine records, the store lays out, analysis ranks, plots label and the
README's variable table is written from this one table (``tests/test_schema.py`` checks that
the README and the schema agree).

Metric sets (``SweepSpec.metrics``):

- ``"none"``: the loss only (plus the per-run results);
- ``"default"``: every per-step and per-layer metric below;
- curvature sets (``"sharpness"``, ``"precond_sharpness"``, ``"hessian_trace"``,
  ``"per_example"``): measured every ``sharpness_every`` steps on the step's batch, NaN at the
  other logged steps (see :mod:`gradlab.curvature`).

Adding a metric means one :class:`Variable` entry here and the code that measures it (the
engine's metric hook for a curvature set, :func:`gradlab.metrics.step_metrics` for a default
one); see ``docs/architecture.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

__all__ = [
    "CURVATURE_SETS",
    "METRIC_SETS",
    "RUN",
    "STEP",
    "STEP_LAYER",
    "VARIABLES",
    "Variable",
    "higher_is_better",
    "markdown_table",
    "variables_of",
]

STEP = ("step",)
STEP_LAYER = ("step", "layer")
RUN: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Variable:
    """One result variable.

    Attributes:
      name: the Dataset variable name.
      dims: the dims after ``optimizer`` and the grid axes: ``()`` (one value per run),
        ``("step",)`` or ``("step", "layer")``.
      meaning: one line, with the maths.
      unit: what the number counts (``"loss"`` is the unit of the chosen loss).
      dtype: ``"float32"``, ``"bool"`` or ``"int32"``.
      higher_is_better: ``True``/``False`` for a figure of merit, ``None`` for a measurement
        that is neither (a gradient norm).
      metric_set: the metric set that records it (``"run"``: every sweep records it).
      of_update: it describes the update u_t of that step, so it stands only where the update
        was applied (a run that diverges at step t keeps its step-t measurements of θ_t, but
        not of u_t).
    """

    name: str
    dims: tuple[str, ...]
    meaning: str
    unit: str
    dtype: str = "float32"
    higher_is_better: bool | None = None
    metric_set: str = "default"
    of_update: bool = False


_TABLE = (
    # -- per step, default metrics -----------------------------------------------------------
    Variable("loss", STEP, "minibatch loss L(θ_t), mean over the batch: the training objective "
             "(with a z_loss axis, plus z·(log Σ exp logits)²)", "loss",
             higher_is_better=False, metric_set="none"),
    Variable("accuracy", STEP, "minibatch accuracy (NaN for regression)", "fraction",
             higher_is_better=True),
    Variable("grad_norm", STEP, "‖g_t‖₂ of the raw gradient, before any clipping", "L2 norm"),
    Variable("grad_max_abs", STEP, "max |g_t| of the raw gradient (NaN if g_t has a NaN)",
             "gradient"),
    Variable("update_norm", STEP, "‖θ_{t+1} − θ_t‖₂, the step actually taken", "L2 norm",
             of_update=True),
    Variable("clipped", STEP, "a clip stage changed the gradient", "flag", dtype="bool",
             of_update=True),
    Variable("skipped", STEP, "`apply_if_finite` dropped the step", "flag", dtype="bool",
             of_update=True),
    # -- per step and layer, default metrics -------------------------------------------------
    Variable("grad_norm_layer", STEP_LAYER, "‖g_t^l‖₂ over layer l's kernel and bias",
             "L2 norm"),
    Variable("param_norm_layer", STEP_LAYER, "‖θ_t^l‖₂ over layer l's kernel and bias",
             "L2 norm"),
    Variable("update_ratio_layer", STEP_LAYER, "‖θ_{t+1}^l − θ_t^l‖₂ / ‖θ_t^l‖₂", "ratio",
             of_update=True),
    Variable("act_rms_layer", STEP_LAYER, "RMS of the pre-activation h^l (forward signal)",
             "activation"),
    Variable("delta_rms_layer", STEP_LAYER,
             "RMS of δ^l = ∂L/∂h^l (backward signal; (δ^{l−1}/δ^l)²·N_{l−1}/N_l is the "
             "empirical χ1)",
             "gradient"),
    # -- per step, opt-in sets (every `sharpness_every` steps; feature_change every logged step)
    Variable("sharpness", STEP, "λ_max(∇²L(θ_t)), the top Hessian eigenvalue (Lanczos)",
             "1/η", metric_set="sharpness"),
    Variable("sharpness_bound", STEP,
             "the chain's edge of stability at η_t: 2/η (sgd), (2+2β)/η (momentum), "
             "(2+2β1)/(η(1−β1)) (adam, on precond_sharpness); NaN where unknown",
             "1/η", metric_set="sharpness"),
    Variable("precond_sharpness", STEP, "λ_max(P⁻¹∇²L) with P Adam's preconditioner",
             "1/η", metric_set="precond_sharpness"),
    Variable("hessian_trace", STEP, "tr ∇²L by Hutchinson's estimator (10 probes)", "1/η",
             metric_set="hessian_trace"),
    Variable("grad_noise_scale", STEP, "B_simple = tr Σ / ‖G‖² from per-example gradients",
             "examples", metric_set="per_example"),
    Variable("grad_snr", STEP, "mean over parameters of ḡ²/s² (per-example gradients)",
             "ratio", metric_set="per_example"),
    Variable("act_change_rms_layer", STEP_LAYER,
             "RMS of h^l(θ_t; x_t) − h^l(θ_0; x_t), the pre-activation's change since "
             "initialisation on the step's batch (every logged step; the coordinate check)",
             "activation", metric_set="feature_change"),
    # -- per run ------------------------------------------------------------------------------
    Variable("initial_sharpness", RUN,
             "λ₀ = λ_max(∇²L(θ_0)) on the full training set (Lanczos); with "
             "lr_units = 'sharpness' the run trained at η = c/λ₀",
             "1/η", metric_set="initial_sharpness"),
    Variable("diverged", RUN, "the run diverged", "flag", dtype="bool",
             higher_is_better=False, metric_set="run"),
    Variable("diverged_at", RUN, "the step at which it diverged (-1: never)", "step",
             dtype="int32", metric_set="run"),
    Variable("final_loss", RUN, "loss on the full training set after training (NaN if "
             "diverged; without the z-loss term)", "loss", higher_is_better=False,
             metric_set="run"),
    Variable("test_loss", RUN, "loss on the test set after training (NaN if diverged; "
             "without the z-loss term)", "loss", higher_is_better=False, metric_set="run"),
    Variable("test_accuracy", RUN, "accuracy on the test set after training (NaN if "
             "diverged or regression)", "fraction", higher_is_better=True, metric_set="run"),
)  # fmt: skip

VARIABLES: dict[str, Variable] = {v.name: v for v in _TABLE}

# The curvature sets, each with the variables it records (``sharpness_bound`` is recorded by
# both eigenvalue sets: it bounds ``sharpness`` for sgd/momentum and ``precond_sharpness`` for
# adam).
CURVATURE_SETS: dict[str, tuple[str, ...]] = {
    "sharpness": ("sharpness", "sharpness_bound"),
    "precond_sharpness": ("precond_sharpness", "sharpness_bound"),
    "hessian_trace": ("hessian_trace",),
    "per_example": ("grad_noise_scale", "grad_snr"),
    "feature_change": ("act_change_rms_layer",),
}
METRIC_SETS = ("none", "default", *CURVATURE_SETS, "initial_sharpness")


def variables_of(metric_sets: Iterable[str]) -> tuple[str, ...]:
    """The variables a sweep with these metric sets records, in schema order."""
    sets = set(metric_sets)
    names = {v.name for v in _TABLE if v.metric_set in ("run", "none")}
    if "default" in sets:
        names |= {v.name for v in _TABLE if v.metric_set == "default"}
    for s in sets & set(CURVATURE_SETS):
        names |= set(CURVATURE_SETS[s])
    names |= {v.name for v in _TABLE if v.metric_set in sets}
    return tuple(v.name for v in _TABLE if v.name in names)


def higher_is_better(name: str) -> bool:
    """Whether a larger value of variable ``name`` is better (accuracies); ``False`` for losses
    and for every variable the schema does not call a figure of merit."""
    variable = VARIABLES.get(name)
    return bool(variable and variable.higher_is_better)


def markdown_table() -> str:
    """The README's table of result variables, generated from :data:`VARIABLES`."""
    rows = ["| variable | dims | set | meaning |", "|---|---|---|---|"]
    for v in _TABLE:
        dims = ", ".join(("…", *v.dims))
        meaning = v.meaning.replace("|", "\\|")
        rows.append(f"| `{v.name}` | {dims} | {v.metric_set} | {meaning} |")
    return "\n".join(rows)
