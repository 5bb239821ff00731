r"""Does the measurement agree with mean-field theory? χ1, the critical line, trainable depth.

Mean field (Poole et al. 2016, Schoenholz et al. 2017) follows a signal through a deep random
network with W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²): the pre-activation length settles at a
fixed point q*, and the backward signal δ^l = ∂L/∂h^l is multiplied at every layer by

.. math:: \chi_1 = \sigma_w^2\, \mathbb E_z\big[\phi'(\sqrt{q^*} z)^2\big]

(> 1: chaotic, gradients explode towards the input; < 1: ordered, they vanish). The engine
records ``delta_rms_layer``, the RMS of δ^l per layer; :func:`chi1_profile` and
:func:`empirical_chi1` measure χ1 from it, to compare with :func:`gradlab.theory.chi1`.
:func:`critical_init_scale` draws the theory's order/chaos line on a grid of init scales, and
:func:`trainable_depth` finds the deepest network that trains, to compare with the 6 ξ_c of
Schoenholz et al.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from gradlab import schema
from gradlab.analysis.selection import (
    SEED,
    Axes,
    counted_runs,
    grid_axes,
    pool_axes,
    quiet_nan_warnings,
    run_cost,
    select_values,
)

__all__ = [
    "chi1_profile",
    "critical_init_scale",
    "empirical_chi1",
    "layer_widths",
    "trainable_depth",
]


Widths = Sequence[float] | np.ndarray | xr.DataArray | None


def layer_widths(ds: xr.Dataset, widths: Widths = None) -> xr.DataArray:
    """The width :math:`N_l` of each layer's pre-activation :math:`h^l`, from ``widths`` or ``ds``.

    ``gl.run`` records the widths as the ``layer_width`` coordinate on ``layer`` (0 where the
    model records no signal); :func:`gradlab.analysis.concat_sweeps` keeps one row of widths
    per joined sweep where they differ. An explicit ``widths`` overrides the coordinate.

    Args:
      ds: a result Dataset.
      widths: one width per layer (input side first, the output layer last), or a DataArray
        with a ``layer`` dim; ``None`` reads the ``layer_width`` coordinate.

    Returns:
      A float DataArray over ``layer`` (and any other dims of the widths).

    Raises:
      ValueError: ``widths`` is ``None`` and ``ds`` has no ``layer_width`` coordinate (a
        Dataset written by an older gradlab), or ``widths`` has not one entry per layer (or,
        as a DataArray, no ``layer`` dim).

    Example:
      >>> layer_widths(ds, widths=[64, 16, 64, 10]).values  # doctest: +SKIP
      array([64., 16., 64., 10.])
    """
    if widths is None:
        if "layer_width" not in ds.coords:
            raise ValueError(
                "χ1 from delta_rms_layer needs each layer's width N_l (the per-unit ratio is "
                "χ1·N_l/N_{l-1}), and this Dataset has no 'layer_width' coordinate (it was "
                "written by an older gradlab): pass widths=[N_0, ..., N_{L-1}], the width of "
                "each pre-activation h^l, the output layer last"
            )
        coord = ds["layer_width"]
        return xr.DataArray(
            np.asarray(coord.values, float),
            dims=coord.dims,
            coords={d: ds[d] for d in coord.dims},
        )
    if isinstance(widths, xr.DataArray):
        if "layer" not in widths.dims:
            raise ValueError(f"widths needs a 'layer' dim, got dims {widths.dims}")
        return widths.astype(float)
    values = np.asarray(widths, float)
    if values.shape != (ds.sizes["layer"],):
        raise ValueError(
            f"widths needs one width per layer ({ds.sizes['layer']}), got shape {values.shape}"
        )
    return xr.DataArray(values, dims="layer", coords={"layer": ds["layer"]})


def _width_factor(d2: xr.DataArray, n: xr.DataArray, source: str) -> xr.DataArray:
    """N_{l-1}/N_l at each pair l, after checking every layer with a measured signal has N > 0."""
    bad = d2.notnull() & ~(n > 0)
    if bool(bad.any()):
        where = bad.any([d for d in bad.dims if d != "layer"]).values
        layers = [int(v) for v in bad["layer"].values[where]]
        raise ValueError(
            f"delta_rms_layer is recorded at layers {layers}, whose width is 0 or unknown in "
            f"{source}: pass widths=[N_0, ..., N_{{L-1}}] with every such layer's width"
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return (n.shift(layer=1) / n).isel(layer=slice(1, None))


def chi1_profile(ds: xr.Dataset, step: int = 0, widths: Widths = None) -> xr.DataArray:
    r"""Empirical χ1 of every consecutive layer pair: the backward signal's growth per layer.

    With :math:`\delta^l = \partial\mathcal L / \partial h^l` and
    :math:`\delta^{l-1}_i = \phi'(h^{l-1}_i) \sum_j W^l_{ji}\, \delta^l_j`,
    :math:`W^l \sim \mathcal N(0, \sigma_w^2/N_{l-1})`, the mean square per unit obeys

    .. math:: E[(\delta^{l-1})^2] = \sigma_w^2\, E[\phi'^2]\, \frac{N_l}{N_{l-1}}\,
       E[(\delta^l)^2] = \chi_1 \frac{N_l}{N_{l-1}}\, E[(\delta^l)^2]

    with :math:`N_l` the width of :math:`h^l`. So the measured ratio is corrected for the
    widths:

    .. math:: \hat\chi_1^{(l)} = \frac{\mathrm{rms}(\delta^{l-1})^2}{\mathrm{rms}(\delta^l)^2}
       \cdot \frac{N_{l-1}}{N_l}, \qquad l = 1, \dots, L-1

    (the plain ratio is χ1 only between layers of equal width). > 1 means gradients grow towards
    the input (explode), < 1 that they vanish. The last pair (l = L − 1) starts from the output
    layer's δ (the loss's gradient) and goes through the output weights; it obeys the same law
    when they are drawn with the same σ_w, but :func:`empirical_chi1` leaves it out.

    Args:
      ds: a result Dataset with ``delta_rms_layer``.
      step: the logged step (coordinate value) to read; theory describes initialisation, 0.
      widths: each layer's width :math:`N_l`, input side first (:func:`layer_widths`);
        ``None`` reads the Dataset's ``layer_width`` coordinate.

    Returns:
      A DataArray over ``(optimizer, *grid, layer)`` with ``layer = l`` labelling the pair
      (l − 1, l).

    Raises:
      ValueError: the widths are neither given nor recorded, or a layer with a measured
        backward signal has width 0.

    Example:
      >>> chi1_profile(ds).median("seed")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (eq. 9).
    """
    d2 = select_values(ds, {"step": step})["delta_rms_layer"] ** 2
    source = "the widths given" if widths is not None else "the layer_width coordinate"
    factor = _width_factor(d2, layer_widths(ds, widths), source)
    prev, nxt = d2.isel(layer=slice(None, -1)), d2.isel(layer=slice(1, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = nxt.copy(data=prev.data / nxt.data)
        ratio = (ratio * factor.astype(ratio.dtype)).transpose(*ratio.dims, ...)
    ratio = ratio.drop_vars("layer_width", errors="ignore")
    return ratio.rename("chi1").assign_attrs(
        description="rms(delta[l-1])^2 / rms(delta[l])^2 * N[l-1] / N[l], pair (l-1, l)"
    )


def empirical_chi1(
    ds: xr.Dataset, step: int = 0, skip: int = 0, widths: Widths = None
) -> xr.DataArray:
    r"""Measured χ1: geometric mean of the layer-to-layer backward-signal ratio, hidden layers.

    With layers 0..L−1 (L − 1 the output layer), the pairs used are the *interior* ones, both
    layers hidden: (l − 1, l) for l = 1 + ``skip``, ..., L − 2. The output pair is excluded
    (see :func:`chi1_profile`, which also gives each pair's width correction
    :math:`N_{l-1}/N_l`). The geometric mean telescopes:

    .. math:: \hat\chi_1 = \Big(\prod_{l=s+1}^{L-2}\hat\chi_1^{(l)}\Big)^{1/(L-2-s)}
       = \left(\frac{\mathrm{rms}(\delta_{s})^2\, N_{s}}
       {\mathrm{rms}(\delta_{L-2})^2\, N_{L-2}}\right)^{1/(L-2-s)},
       \qquad s = \texttt{skip}

    to be compared with mean-field :math:`\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*}z)^2]`
    (ReLU: σ_w²/2), critical at χ1 = 1.

    Mean-field χ1 is defined at the fixed point q* of the length map; the first layers of a
    network are still relaxing from the input's length towards q* (over a few ξ_q layers), and
    their backward gain differs. ``skip`` leaves out that many pairs nearest the input, so the
    measurement describes the network once the signal has forgotten its input's length.

    Args:
      ds: a result Dataset with ``delta_rms_layer`` (at least two hidden layers past the
        skipped pairs).
      step: the logged step to read (default 0, the initialisation theory describes).
      skip: how many pairs nearest the input to leave out (default 0: every interior pair).
      widths: each layer's width, input side first (:func:`layer_widths`); ``None`` reads the
        Dataset's ``layer_width`` coordinate.

    Returns:
      A DataArray over ``(optimizer, *grid)``; NaN for runs with no interior pair left. L is
      counted per run (layers padded with NaN, for models shallower than the deepest in the
      sweep, are ignored).

    Raises:
      ValueError: ``skip`` < 0, no model in the sweep has an interior pair left (two hidden
        layers past the skipped pairs), or the widths are neither given nor recorded (or 0 at
        a layer with a measured signal).

    Example:
      >>> empirical_chi1(ds).median("seed").sel(optimizer="sgd")  # doctest: +SKIP
      >>> empirical_chi1(ds, skip=5).median("seed")  # past the input transient  # doctest: +SKIP

    References:
      Poole et al., *Exponential expressivity in deep neural networks through transient chaos*,
      NeurIPS 2016. Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (eqs. 4 and 9:
      q* and χ1).
    """
    if skip < 0:
        raise ValueError(f"skip must be >= 0, got {skip}")
    depth = select_values(ds, {"step": step})["delta_rms_layer"].notnull().sum("layer")  # NaN pad
    if int(depth.max()) < skip + 3:
        raise ValueError(
            f"no interior layer pair left after skipping {skip}: empirical χ1 needs two hidden "
            f"layers past the skipped pairs ({skip + 3} layers); the deepest model here has "
            f"{int(depth.max())}"
        )
    pairs = chi1_profile(ds, step, widths)
    index = xr.DataArray(np.arange(1, ds.sizes["layer"]), dims="layer")
    with quiet_nan_warnings():
        logs = np.log(pairs).where((index <= depth - 2) & (index > skip))
        out = np.exp(logs.mean("layer"))
    return out.rename("chi1").assign_attrs(step=step, pairs=f"(l-1, l), l = {skip + 1}..L-2")


def critical_init_scale(
    bias_std: Sequence[float] | np.ndarray | xr.DataArray,
    critical_sigma_w2: Callable[[float], float],
) -> xr.DataArray:
    r"""The mean-field order/chaos line as init scale σ_w against bias std σ_b.

    The theory is written in variances, the grid in standard deviations:

    .. math:: \sigma_w^*(\sigma_b) = \sqrt{\sigma_{w,\mathrm{crit}}^2(\sigma_b^2)}

    where χ1(σ_w², σ_b²) = 1. ``init_scale`` is σ_w for ``init="normal"`` and
    ``"lecun_normal"`` (variance σ_w²/fan_in); for other schemes rescale first.

    Args:
      bias_std: σ_b values (e.g. ``ds["bias_std"]``).
      critical_sigma_w2: maps σ_b² to the critical σ_w², e.g.
        ``lambda sb2: gl.theory.critical_sigma_w2("tanh", sb2)``.

    Returns:
      A DataArray ``init_scale`` over ``bias_std``: a line to overlay on a phase diagram of
      ``bias_std`` × ``init_scale``.

    Example:
      >>> crit = critical_init_scale([0.0, 0.5], lambda sb2: 2.0)  # ReLU: σ_w² = 2
      >>> [round(float(v), 4) for v in crit]
      [1.4142, 1.4142]

    References:
      Poole et al., NeurIPS 2016. Schoenholz et al., ICLR 2017.
    """
    sb = np.asarray(bias_std, dtype=float).ravel()
    sw = np.sqrt([critical_sigma_w2(float(b) ** 2) for b in sb])
    return xr.DataArray(sw, dims="bias_std", coords={"bias_std": sb}, name="init_scale")


def trainable_depth(
    ds: xr.Dataset,
    dim: str = "depth",
    metric: str = "test_accuracy",
    threshold: float = 0.5,
    over: Axes = SEED,
) -> xr.DataArray:
    r"""The largest value of ``dim`` (depth) at which a strict majority of the runs trains.

    A run *trains* when its ``metric`` passes ``threshold`` (at least, for metrics where higher
    is better, :func:`gradlab.schema.higher_is_better`; at most, for losses); a diverged run
    does not train. A depth is *trainable* when strictly more than half of the runs pooled by
    ``over`` (by default the seeds) train there:

    .. math:: L_{\max} = \max\Big\{L : \frac{1}{n}\sum_{a}
       [\text{run}(L, a) \text{ trains}] > \tfrac12\Big\}

    With an odd number of seeds this is "the median run trains"; with an even number a tie
    (e.g. one seed of two) is *not* trainable: half the seeds failing is not evidence that the
    depth trains. The answer is as fine as the grid: the true limit lies between
    :math:`L_{\max}` and the next grid value.

    Schoenholz et al. (2017) find :math:`L_{\max} \approx 6\,\xi_c` (see
    :func:`gradlab.theory.depth_scales`). Works for any ordered axis, typically one joined by
    :func:`gradlab.analysis.concat_sweeps`.

    Args:
      ds: a result Dataset with ``dim`` among its grid axes.
      dim: the depth axis.
      metric: a per-run variable.
      threshold: the pass mark (e.g. 0.5 test accuracy: well above chance for 10 classes).
      over: grid axes whose runs vote (default the seeds); ``None``: each run on its own.

    Returns:
      A DataArray over ``optimizer`` and the grid axes other than ``dim`` and ``over``; NaN where
      no depth trains.

    Example:
      >>> trainable_depth(ds, threshold=0.5).sel(optimizer="sgd")  # doctest: +SKIP

    References:
      Schoenholz et al., *Deep Information Propagation*, ICLR 2017 (section 6).
    """
    if dim not in grid_axes(ds):
        raise ValueError(f"{dim!r} is not a grid axis; grid axes: {list(grid_axes(ds))}")
    dims = pool_axes(ds, over)
    if dim in dims:
        raise ValueError(f"{dim!r} cannot be pooled over; it is the axis being searched")
    cost = run_cost(ds, metric)
    limit = -threshold if schema.higher_is_better(metric) else threshold
    passes = (cost <= limit).astype(float).where(counted_runs(ds, dims))
    with quiet_nan_warnings():
        share = passes.mean(dims) if dims else passes
    depth = ds[dim].astype(float).where(share > 0.5)  # a strict majority; a tie fails
    with quiet_nan_warnings():
        return depth.max(dim).rename(f"trainable_{dim}")
