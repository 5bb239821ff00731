"""Figures from a sweep's result Dataset: one call, one matplotlib ``Figure``.

Each function reads the Dataset of ``gl.run`` / ``gl.load`` (through :mod:`gradlab.analysis`)
and returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing is shown or kept
in global state: display it in a notebook, or ``fig.savefig("x.png")``.

The figures, by the question they answer:

- where in the grid do runs diverge: :func:`phase_diagram` (:mod:`~gradlab.plots.heatmaps`);
- what happens during training and across depth: :func:`trajectories`, :func:`layer_profile`,
  :func:`sharpness_vs_bound` (:mod:`~gradlab.plots.lines`);
- how often and how soon runs diverge: :func:`divergence_curve`, :func:`survival_curves`
  (:mod:`~gradlab.plots.divergence`);
- which chain is better: :func:`comparison_bars`, :func:`optimizer_table`,
  :func:`performance_profiles` (:mod:`~gradlab.plots.comparison`);
- does the network agree with mean-field theory: :func:`chi1_vs_theory`,
  :func:`order_chaos_diagram`, :func:`depth_scale_diagram`, :func:`mean_field_diagram`
  (:mod:`~gradlab.plots.mean_field`);
- does a parametrization transfer across width: :func:`coord_check`, :func:`lr_transfer`
  (:mod:`~gradlab.plots.width`);
- is the trainability boundary fractal: :func:`fractal_image`, :func:`fractal_zooms`
  (:mod:`~gradlab.plots.fractal`);
- between stable and diverged: :func:`catapult_diagram` (the catapult phases over c and depth
  or width), :func:`sensitivity_bars` (learning-rate sensitivity per intervention)
  (:mod:`~gradlab.plots.instability`).

Labels, colours and layout live in :mod:`~gradlab.plots.style`; what a figure reads from the
Dataset (selection, sorting, pooling) in :mod:`~gradlab.plots.reading`.

Shared conventions:

- one panel per optimizer chain (titled with the chain), up to four panels per row;
  ``trajectories``, ``layer_profile`` and ``chi1_vs_theory`` also take ``row=`` / ``col=``: a
  row or column of panels per value of a second grid axis (ReLU beside tanh:
  ``col="activation"``);
- grid axes that a figure does not show are *pooled* (seeds always; any other axis with more than
  one value too); pick one slice with ``sel={"clip_norm": 1.0}``. The subtitle names every fixed
  value (selected, or an axis of length one) and every pooled axis; a value not in the grid is
  an error naming the axis and its values;
- axes are written as what they are in the Dataset: ``init_scale`` is σ_w only for
  ``init="normal"``, elsewhere a multiple of the scheme's σ; per-layer norms over parameters
  are drawn per parameter (‖x_l‖/√n_l) where the Dataset records ``layer_size``;
- numeric axes that are log-spaced (learning rates, init scales 0.5, 1, 2, 4) get log scales;
- colour-blind-safe colours: viridis for maps, plasma for ordered hues, Okabe-Ito for chains;
- runs are compared while alive: a diverged run counts as +∞ from its divergence step (−∞ for
  accuracies), so a median line ends when half the runs have exploded, and an × marks each step
  at which runs diverged (with their number where several did).
"""

from gradlab.plots.comparison import comparison_bars, optimizer_table, performance_profiles
from gradlab.plots.divergence import divergence_curve, survival_curves
from gradlab.plots.fractal import fractal_image, fractal_zooms
from gradlab.plots.heatmaps import phase_diagram
from gradlab.plots.instability import catapult_diagram, sensitivity_bars, sensitivity_rows
from gradlab.plots.lines import layer_profile, sharpness_vs_bound, trajectories
from gradlab.plots.mean_field import (
    chi1_vs_theory,
    depth_scale_diagram,
    mean_field_diagram,
    order_chaos_diagram,
)
from gradlab.plots.style import (
    AXIS_LABELS,
    AXIS_SYMBOLS,
    LINE_MAP,
    MAP,
    OKABE_ITO,
    VAR_LABELS,
)
from gradlab.plots.width import coord_check, lr_transfer

__all__ = [
    "AXIS_LABELS",
    "AXIS_SYMBOLS",
    "LINE_MAP",
    "MAP",
    "OKABE_ITO",
    "VAR_LABELS",
    "catapult_diagram",
    "chi1_vs_theory",
    "comparison_bars",
    "coord_check",
    "depth_scale_diagram",
    "divergence_curve",
    "fractal_image",
    "fractal_zooms",
    "layer_profile",
    "lr_transfer",
    "mean_field_diagram",
    "optimizer_table",
    "order_chaos_diagram",
    "performance_profiles",
    "phase_diagram",
    "sensitivity_bars",
    "sensitivity_rows",
    "sharpness_vs_bound",
    "survival_curves",
    "trajectories",
]
