"""Tables and numbers from a sweep's result Dataset, one module per question.

``gl.analysis`` reads the ``xarray.Dataset`` that ``gl.run`` / ``gl.load`` return (dims
``optimizer``, the grid axes, ``step``, ``layer``; see :mod:`gradlab.schema`); nothing here
trains, compiles or writes. The questions gradlab answers map onto its modules:

- :mod:`~gradlab.analysis.stability` — *where do gradients explode?* :func:`divergence_rate`
  (with :func:`wilson_interval` across seeds), :func:`stable_lr_range` / :func:`max_stable_lr`,
  :func:`time_to_explode`, :func:`survival`;
- :mod:`~gradlab.analysis.comparison` — *which optimizer chain is most robust, at what cost?*
  :func:`compare_optimizers` (one row per chain configuration, :func:`chain_rows`; printed by
  the CLI via :func:`format_table`), :func:`best_learning_rate`, :func:`relative_cost`;
  :mod:`~gradlab.analysis.profiles`: :func:`performance_profile`, :func:`profile_score`;
- :mod:`~gradlab.analysis.training` — *does a run train, and how well at its best?*
  :func:`trains` (against :func:`chance_accuracy`), :func:`max_trained_lr`, :func:`best_over`
  (the best median over an axis, with :func:`median_interval`);
- :mod:`~gradlab.analysis.clipping` — *how often did an intervention fire, where should its
  threshold be?* :func:`fire_rate`, :func:`typical_grad_norm`;
- :mod:`~gradlab.analysis.mean_field` — *does signal propagation agree with mean field?*
  :func:`empirical_chi1`, :func:`chi1_profile` (corrected for the widths,
  :func:`layer_widths`), :func:`critical_init_scale` (the critical line),
  :func:`trainable_depth` (against 6 ξ_c);
- :mod:`~gradlab.analysis.curvature` — *does the sharpness sit at its stability bound?*
  :func:`edge_of_stability`, :func:`predicted_lr_boundary` (2/λ), :func:`bounded_sharpness`;
- :mod:`~gradlab.analysis.instability` — *what happens between stable and diverged?*
  :func:`lr_sensitivity` (Wortsman et al. 2023, with :func:`mean_interval` over seeds),
  :func:`catapult_phases` (the phase of each run and the boundaries c_loss, c_max in units of
  the initial sharpness, :func:`lr_units`), :func:`warmup_stability` (the gain of linear
  warmup in the largest stable learning rate, with η·λ along the runs);
- :mod:`~gradlab.analysis.width` — *does a parametrization keep every layer's scale and the
  best learning rate fixed as the network widens?* :func:`coord_check`, :func:`optimal_lr`,
  :func:`lr_transfer_exponent`;
- :mod:`~gradlab.analysis.precision` — *which verdicts depend on the arithmetic?*
  :func:`precision_flips` (over a ``dtype`` grid axis);
- :mod:`~gradlab.analysis.fractal` — *is the boundary between trained and diverged fractal?*
  :func:`fractal_dimension` (box counting, :class:`BoxCounting`, over one image or a zoom
  sequence), :func:`convergence_measure` (the image's colour); :mod:`~gradlab.analysis.zoom`:
  :func:`boundary_point` and :func:`zoom_spec` (a grid centred on the boundary, finer);
- :mod:`~gradlab.analysis.fits` (:func:`crossing`, :func:`power_law_exponent`),
  :mod:`~gradlab.analysis.sweeps` (:func:`concat_sweeps`), :mod:`~gradlab.analysis.claims`
  (:class:`ClaimSet`, :func:`claims_table`), :mod:`~gradlab.analysis.tables` (:func:`format_table`,
  :func:`markdown_table`, :func:`table_cells`);
- :mod:`~gradlab.analysis.selection` — the conventions they all share: :func:`grid_axes`,
  :func:`alive`, :func:`counted_runs` (which runs count), :func:`chain_reads`,
  :func:`hyperparameter_axes`, :func:`pool_axes`, :func:`select_values` (grid values, with
  errors that name the axis), :func:`per_parameter_rms` (per-layer norms comparable across
  layer sizes), :func:`quiet_nan_warnings`.

Purity. Every function is pure: no I/O, no training, no global state, and its inputs are not
modified. Most are functions of one result Dataset and of nothing else but two fixed tables of
the library: :func:`gradlab.schema.higher_is_better` (whether a metric is maximised) and the
Dataset's own coordinates (``stability_rule`` per chain, ``layer_width`` per layer). These read
something other than one Dataset, by design:

- :func:`critical_init_scale` takes the theory as a function (σ_b² → critical σ_w², e.g.
  :func:`gradlab.theory.critical_sigma_w2`), so that analysis does not pick an activation's
  theory for the caller;
- :func:`crossing` and :func:`power_law_exponent` read a DataArray (any measured curve);
- :func:`concat_sweeps` and :func:`warmup_stability` read several Datasets, and so may
  :func:`fractal_dimension` (zoom levels); :func:`box_counting_dimension` and
  :func:`boundary_image` read boolean images; :func:`zoom_spec` reads a Dataset's spec text (or
  a spec) and returns a spec;
  :func:`claims_table` and :class:`ClaimSet` read numbers (and :meth:`ClaimSet.save` /
  :func:`load_claims` write and read a file);
  :func:`wilson_interval` reads counts; :func:`profile_score` reads a profile;
  :func:`performance_profile` accepts a DataArray of costs instead of a metric name;
- :func:`format_table`, :func:`markdown_table`, :func:`table_cells` read a DataFrame.

Conventions. A run is *alive* at step ``s`` iff ``diverged_at == -1`` or ``s <= diverged_at``
(the values at ``diverged_at`` are measured, later ones are NaN). A run *counts*
(:func:`counted_runs`) iff it has finished and it is not a copy: a chain is trained once per
distinct configuration, and along a grid axis it does not read (its ``reads_<axis>``
coordinate) the Dataset holds copies of the run at the axis's first value. Every reduction
over grid axes counts only these runs: rates are counted k/n, medians skip the others, worst
cases look only at them. ``over=`` names the grid axes a
function reduces (pools) over; ``"seed"`` may be named even when the sweep has no seed axis (a
sweep without seeds has one run per configuration).
"""

from gradlab.analysis.claims import Claim, ClaimSet, claims_markdown, claims_table, load_claims
from gradlab.analysis.clipping import fire_rate, typical_grad_norm
from gradlab.analysis.comparison import (
    best_learning_rate,
    chain_rows,
    compare_optimizers,
    relative_cost,
)
from gradlab.analysis.curvature import bounded_sharpness, edge_of_stability, predicted_lr_boundary
from gradlab.analysis.fits import crossing, power_law_exponent
from gradlab.analysis.fractal import (
    BoxCounting,
    boundary_image,
    box_counting_dimension,
    convergence_measure,
    fractal_dimension,
    image_axes,
    outcome_image,
)
from gradlab.analysis.instability import (
    PHASES,
    catapult_phases,
    lr_sensitivity,
    lr_units,
    warmup_stability,
)
from gradlab.analysis.mean_field import (
    chi1_profile,
    critical_init_scale,
    empirical_chi1,
    layer_widths,
    trainable_depth,
)
from gradlab.analysis.precision import precision_flips
from gradlab.analysis.profiles import performance_profile, profile_score
from gradlab.analysis.selection import (
    LR,
    SEED,
    alive,
    applied,
    chain_reads,
    counted_runs,
    grid_axes,
    hyperparameter_axes,
    per_parameter_rms,
    pool_axes,
    quiet_nan_warnings,
    select_values,
)
from gradlab.analysis.stability import (
    divergence_rate,
    max_stable_lr,
    stable_lr_range,
    survival,
    time_to_explode,
    wilson_interval,
)
from gradlab.analysis.sweeps import concat_sweeps
from gradlab.analysis.tables import (
    SUMMARY_COLUMNS,
    TABLE_COLUMNS,
    format_table,
    markdown_table,
    table_cells,
)
from gradlab.analysis.training import (
    best_over,
    chance_accuracy,
    max_trained_lr,
    mean_interval,
    median_interval,
    trains,
)
from gradlab.analysis.width import WIDTH, coord_check, lr_transfer_exponent, optimal_lr
from gradlab.analysis.zoom import boundary_point, zoom_spec

__all__ = [
    "LR",
    "PHASES",
    "SEED",
    "SUMMARY_COLUMNS",
    "TABLE_COLUMNS",
    "WIDTH",
    "BoxCounting",
    "Claim",
    "ClaimSet",
    "alive",
    "applied",
    "best_learning_rate",
    "best_over",
    "boundary_image",
    "boundary_point",
    "bounded_sharpness",
    "box_counting_dimension",
    "catapult_phases",
    "chain_reads",
    "chain_rows",
    "chance_accuracy",
    "chi1_profile",
    "claims_markdown",
    "claims_table",
    "compare_optimizers",
    "concat_sweeps",
    "convergence_measure",
    "coord_check",
    "counted_runs",
    "critical_init_scale",
    "crossing",
    "divergence_rate",
    "edge_of_stability",
    "empirical_chi1",
    "fire_rate",
    "format_table",
    "fractal_dimension",
    "grid_axes",
    "hyperparameter_axes",
    "image_axes",
    "layer_widths",
    "load_claims",
    "lr_sensitivity",
    "lr_transfer_exponent",
    "lr_units",
    "markdown_table",
    "max_stable_lr",
    "max_trained_lr",
    "mean_interval",
    "median_interval",
    "optimal_lr",
    "outcome_image",
    "per_parameter_rms",
    "performance_profile",
    "pool_axes",
    "power_law_exponent",
    "precision_flips",
    "predicted_lr_boundary",
    "profile_score",
    "quiet_nan_warnings",
    "relative_cost",
    "select_values",
    "stable_lr_range",
    "survival",
    "table_cells",
    "time_to_explode",
    "trainable_depth",
    "trains",
    "typical_grad_norm",
    "warmup_stability",
    "wilson_interval",
    "zoom_spec",
]
