"""Is the boundary between trained and diverged fractal? Box counting, the image, and zooms.

Sohl-Dickstein 2024 trains one small network (:mod:`gradlab.parametrizations`, mean field) over
a 2-D grid of hyperparameters, e.g. the input and output layers' learning rates, and finds that
the boundary between the runs that train and those that diverge is fractal over many decades
of scale. This module measures that boundary from a result Dataset:

- :func:`boundary_image`: the boundary as an image, the 2 x 2 neighbourhoods of grid cells that
  hold both outcomes (the reference code's ``extract_edges``);
- :func:`box_counting_dimension` and :func:`fractal_dimension`: the box-counting dimension of
  a set, and of the boundary of one image or of a sequence of zooms, with its fit;
- :func:`convergence_measure`: the number that colours the image (how fast a run converged or
  diverged);
- and, in :mod:`gradlab.analysis.zoom`, :func:`~gradlab.analysis.zoom.boundary_point` and
  :func:`~gradlab.analysis.zoom.zoom_spec`: a point on the boundary and the spec of a grid
  centred there at a given magnification, to run as its own sweep.

Box counting. For box sides s (in cells), N(s) is the number of s x s boxes of a tiling that
hold a point of the set; for a set of dimension D, N(s) ∝ s^(−D), so D is the slope of
log N(s) against log(1/s):

.. math:: \\log N(s) = D \\log(1/s) + b

fitted by least squares over box sides 2, 4, 8, ... up to a quarter of the image. Each count
is the fewest boxes over 16 offsets of the tiling (0, s/4, s/2, 3s/4 along each axis), the
usual correction of a fixed tiling's overcount, which otherwise biases D low (on a Koch
snowflake rendered at 512 x 512: 1.16 with one tiling, 1.25 with the minimum over offsets,
against log 4 / log 3 = 1.262). Sides of one cell are left out: a curve drawn in 2 x 2
neighbourhoods is two cells thick there.

References:
  Sohl-Dickstein, "The boundary of neural network trainability is fractal", 2024,
  arXiv:2402.06184 (code: github.com/Sohl-Dickstein/fractal, ``extract_edges``,
  ``convergence_measure``; the paper fits porespy's box counts and reports dimensions of
  about 1.2 to 2.0).
  Falconer, "Fractal Geometry: Mathematical Foundations and Applications", 3rd ed., 2014,
  ch. 3 (box-counting dimension).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy import stats

from gradlab.analysis.selection import grid_axes, quiet_nan_warnings

__all__ = [
    "BoxCounting",
    "boundary_image",
    "box_counting_dimension",
    "box_counts",
    "convergence_measure",
    "default_sizes",
    "fractal_dimension",
    "image_axes",
    "outcome_image",
]

_OFFSETS = (0.0, 0.25, 0.5, 0.75)  # tiling offsets, as fractions of the box side


class BoxCounting(NamedTuple):
    """A box-counting dimension with its fit.

    Attributes:
      dimension: D, the least-squares slope of log N(s) against log(1/s).
      ci: the 95 % confidence interval of D (Student's t on the fit's residuals; NaN when the
        fit has no degree of freedom left).
      stderr: the standard error of D.
      sizes: the box side of every point of the fit, in cells of its image.
      counts: N(s) of every point.
      level: the image (zoom level) of every point, 0 for a single image.
      intercepts: b, one per level (each image sees its own piece of the set).
      residual: the root-mean-square residual of log N about the fit.
      per_level: each level's own slope, fitted alone.
    """

    dimension: float
    ci: tuple[float, float]
    stderr: float
    sizes: np.ndarray
    counts: np.ndarray
    level: np.ndarray
    intercepts: tuple[float, ...]
    residual: float
    per_level: tuple[float, ...]


def boundary_image(outcome: np.ndarray) -> np.ndarray:
    """The boundary of a 2-D boolean image: its 2 x 2 neighbourhoods that hold both values.

    Pixel (i, j) of the result stands for the corner shared by cells (i, j), (i+1, j),
    (i, j+1) and (i+1, j+1): it is set when they do not all agree, so a straight boundary gives
    a line one pixel wide wherever it lies (Sohl-Dickstein's ``extract_edges``, on the sign of
    the convergence measure).

    Args:
      outcome: ``[n, m]`` booleans (e.g. diverged), n, m >= 2.

    Returns:
      ``[n - 1, m - 1]`` booleans.

    Example:
      >>> a = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1]], bool)
      >>> boundary_image(a).astype(int).tolist()
      [[0, 1], [0, 1]]
    """
    a = np.asarray(outcome, bool)
    if a.ndim != 2 or min(a.shape) < 2:
        raise ValueError(f"outcome must be a 2-D image of at least 2 x 2 cells, got {a.shape}")
    corners = (a[1:, 1:], a[:-1, 1:], a[1:, :-1], a[:-1, :-1])
    return np.logical_or.reduce(corners) & ~np.logical_and.reduce(corners)


def box_counts(mask: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """N(s): the fewest s x s boxes, over 16 offsets of the tiling, that cover ``mask``.

    Args:
      mask: a 2-D boolean image (the set).
      sizes: box sides in pixels, positive integers.

    Returns:
      One count per size (int64).
    """
    mask = np.asarray(mask, bool)
    out = []
    for s in sizes:
        best = None
        for oy in sorted({int(f * s) for f in _OFFSETS}):
            for ox in sorted({int(f * s) for f in _OFFSETS}):
                rows, cols = -(-(mask.shape[0] + oy) // s), -(-(mask.shape[1] + ox) // s)
                tiled = np.zeros((rows * s, cols * s), bool)
                tiled[oy : oy + mask.shape[0], ox : ox + mask.shape[1]] = mask
                n = int(tiled.reshape(rows, s, cols, s).any(axis=(1, 3)).sum())
                best = n if best is None else min(best, n)
        out.append(best)
    return np.asarray(out, np.int64)


def default_sizes(shape: Sequence[int]) -> list[int]:
    """Box sides 2, 4, 8, ... up to a quarter of the image's shorter side."""
    limit = min(shape) / 4
    return [2**k for k in range(1, 64) if 2**k <= limit]


def box_counting_dimension(
    masks: np.ndarray | Sequence[np.ndarray], sizes: Sequence[int] | None = None
) -> BoxCounting:
    """The box-counting dimension of a set drawn on a grid (or of one set seen at several zooms).

    For one image, the least-squares fit log N(s) = D log(1/s) + b over the box sides
    ``sizes`` (:func:`box_counts`). For several images (zoom levels), one common slope D and
    one intercept per image (each sees its own piece of the set, so only the slope is shared):

    .. math:: D = \\frac{\\sum_i \\sum_j (x_{ij} - \\bar x_i)(y_{ij} - \\bar y_i)}
                       {\\sum_i \\sum_j (x_{ij} - \\bar x_i)^2},
       \\quad x = \\log(1/s), \\; y = \\log N

    with the standard error from the residuals on n − L − 1 degrees of freedom (n points,
    L images).

    Args:
      masks: a 2-D boolean image, or a sequence of them.
      sizes: box sides in pixels (default: 2, 4, ... up to a quarter of each image's shorter
        side); at least 3 per image.

    Returns:
      A :class:`BoxCounting`.

    Raises:
      ValueError: fewer than 3 box sides for an image, or an image whose set is empty at some
        side (nothing to count).

    Example:
      >>> square = np.ones((64, 64), bool)
      >>> round(box_counting_dimension(square).dimension, 6)
      2.0
    """
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        masks = [masks]
    points = []
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, bool)
        level_sizes = list(default_sizes(mask.shape) if sizes is None else sizes)
        if len(level_sizes) < 3:
            raise ValueError(
                f"image {i} of shape {mask.shape}: box counting needs at least 3 box sides "
                f"(got {level_sizes}); use a larger grid (33 x 33 points or more)"
            )
        counts = box_counts(mask, level_sizes)
        if np.any(counts == 0):
            raise ValueError(f"image {i} holds no point of the set (no boundary in the grid)")
        points += [(i, s, n) for s, n in zip(level_sizes, counts, strict=True)]
    level, size, count = (np.asarray(v) for v in zip(*points, strict=True))
    return pooled_fit(level, size, count)


def pooled_fit(level: np.ndarray, size: np.ndarray, count: np.ndarray) -> BoxCounting:
    """Least squares of log N on log(1/s) with one slope and one intercept per level (the
    formula of :func:`box_counting_dimension`), for points given as arrays: each point's level,
    box side and count."""
    x, y = np.log(1 / size.astype(float)), np.log(count.astype(float))
    levels = np.unique(level)
    xc, yc = x.copy(), y.copy()
    for i in levels:
        at = level == i
        xc[at] -= x[at].mean()
        yc[at] -= y[at].mean()
    slope = float((xc * yc).sum() / (xc**2).sum())
    intercepts = tuple(float(y[level == i].mean() - slope * x[level == i].mean()) for i in levels)
    resid = yc - slope * xc
    dof = len(x) - len(levels) - 1
    stderr = math.sqrt((resid**2).sum() / dof / (xc**2).sum()) if dof > 0 else math.nan
    half = float(stats.t.ppf(0.975, dof)) * stderr if dof > 0 else math.nan
    per_level = tuple(
        float((xc[level == i] * yc[level == i]).sum() / (xc[level == i] ** 2).sum()) for i in levels
    )
    return BoxCounting(
        dimension=slope,
        ci=(slope - half, slope + half),
        stderr=stderr,
        sizes=size,
        counts=count,
        level=level,
        intercepts=intercepts,
        residual=float(np.sqrt(np.mean(resid**2))),
        per_level=per_level,
    )


def image_axes(ds: xr.Dataset, axes: Sequence[str] | None = None) -> tuple[str, str]:
    """The two grid axes of a fractal image: ``axes``, or the only two with several values.

    Args:
      ds: a result Dataset.
      axes: the two grid axes, or ``None``.

    Returns:
      ``(x, y)``, checked: every other dim of the runs (chains, seeds, ...) has one value.

    Example:
      >>> ds = xr.Dataset({"diverged": (("optimizer", "a", "b"), np.zeros((1, 3, 4), bool))})
      >>> image_axes(ds)
      ('a', 'b')

    Raises:
      ValueError: not two grid axes, or another dim (a chain, a seed) with several values.
    """
    grid = grid_axes(ds)
    if axes is None:
        axes = tuple(a for a in grid if ds.sizes[a] > 1)
    axes = tuple(axes)
    if len(axes) != 2 or any(a not in grid for a in axes):
        raise ValueError(
            f"axes: a fractal image has two grid axes, got {list(axes)}; grid axes: {list(grid)}"
        )
    others = [d for d in ("optimizer", *grid) if d not in axes and ds.sizes.get(d, 1) > 1]
    if others:
        raise ValueError(
            f"{others[0]}: has {ds.sizes[others[0]]} values; select one "
            f"(ds.isel({others[0]}=0)) so the image is one 2-D grid over {list(axes)}"
        )
    return axes[0], axes[1]


def outcome_image(ds: xr.Dataset, axes: Sequence[str] | None = None) -> xr.DataArray:
    """Whether each run of a 2-D grid diverged, as a ``[axes[0], axes[1]]`` boolean DataArray.

    Args:
      ds: a result Dataset of one 2-D grid.
      axes: the two grid axes (default: the two with more than one value).

    Returns:
      ``diverged`` over the two axes, each sorted ascending.

    Example:
      >>> at = np.array([[[True, False], [False, False]]])
      >>> ds = xr.Dataset({"diverged": (("optimizer", "a", "b"), at)},
      ...                 coords={"a": [2.0, 1.0], "b": [1.0, 2.0]})
      >>> outcome_image(ds).values.astype(int).tolist()
      [[0, 0], [1, 0]]

    Raises:
      ValueError: the Dataset is not one 2-D grid (:func:`image_axes`), or holds unfinished
        runs (a partial Dataset).
    """
    x, y = image_axes(ds, axes)
    if "finished" in ds and not bool(ds["finished"].all()):
        raise ValueError("finished: the Dataset has unfinished runs; box counting needs them all")
    da = ds["diverged"].astype(bool).squeeze([d for d in ds["diverged"].dims if d not in (x, y)])
    return da.transpose(x, y).sortby([x, y])


def fractal_dimension(
    ds: xr.Dataset | Sequence[xr.Dataset],
    axes: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
) -> BoxCounting:
    """The box-counting dimension of the boundary between trained and diverged runs.

    The boundary of the image of ``diverged`` over two grid axes (:func:`boundary_image`) is
    box-counted (:func:`box_counting_dimension`). Given a sequence of Datasets (zoom levels,
    e.g. from :func:`zoom_spec`), every level is counted on its own grid and one common slope
    is fitted with one intercept per level: the dimension over all the scales the zooms
    cover, with each level's own slope in ``per_level``. The paper reports the median of the
    local slopes over its zoom sequences, about 1.2 to 2.0 across its configurations.

    Args:
      ds: a result Dataset of one 2-D grid (other axes of length one), or a sequence of them
        (e.g. each run from :func:`gradlab.analysis.zoom_spec` of the one before).
      axes: the two grid axes (default: the two with more than one value).
      sizes: box sides in cells (default 2, 4, ... up to a quarter of the grid).

    Returns:
      A :class:`BoxCounting`: D, its 95 % interval and the points of the fit.

    Raises:
      ValueError: not a 2-D grid, unfinished runs, too small a grid, or no boundary in it.

    Example:
      >>> d = gl.analysis.fractal_dimension(ds)  # doctest: +SKIP
      >>> print(f"D = {d.dimension:.2f} [{d.ci[0]:.2f}, {d.ci[1]:.2f}]")  # doctest: +SKIP
    """
    levels = [ds] if isinstance(ds, xr.Dataset) else list(ds)
    images = [boundary_image(outcome_image(level, axes).values) for level in levels]
    return box_counting_dimension(images, sizes)


def convergence_measure(ds: xr.Dataset) -> xr.DataArray:
    """How fast each run converged (negative) or diverged (positive): the image's colour.

    The reference code colours a run by a sum over its loss trajectory, −Σ_t L_t/L_0 if it
    converged and Σ_t L_0/L_t if not. Here, from what a sweep records (the loss at the logged
    steps, the final loss, the divergence step):

    .. math::

      q = \\begin{cases} 1/(1 + t_\\mathrm{div}) & \\text{diverged at step } t_\\mathrm{div}
          \\\\ -\\max\\bigl(0, \\tfrac{1}{|T|} \\sum_{t \\in T} \\log_{10}(L_0 / L_t)\\bigr)
          & \\text{otherwise} \\end{cases}

    with T the logged steps after 0 and the end of training (``final_loss``): a diverged run
    is in (0, 1], 1 when it diverged at the first step; a trained run is the mean number of
    decades its loss has fallen, negated, so the sign is the outcome (0: neither fell nor
    diverged). Divergence is checked at every step, so t_div is exact at any ``log_every``.

    Args:
      ds: a result Dataset.

    Returns:
      q over ``optimizer`` and the grid axes.

    Example:
      >>> ds = xr.Dataset({
      ...     "loss": (("run", "step"), [[1.0, 0.1, 0.01], [1.0, 5.0, np.nan]]),
      ...     "final_loss": ("run", [0.001, np.nan]),
      ...     "diverged": ("run", [False, True]), "diverged_at": ("run", [-1, 3])},
      ...     coords={"step": [0, 10, 20]})
      >>> convergence_measure(ds).values.tolist()  # -(1 + 2 + 3) / 3, 1 / (1 + 3)
      [-2.0, 0.25]
    """
    loss = ds["loss"]
    initial = loss.isel(step=0)
    later = loss.where(loss["step"] > 0, drop=True)
    trajectory = xr.concat([later, ds["final_loss"].expand_dims(step=[-1])], dim="step")
    with quiet_nan_warnings():
        decades = np.log10(initial / trajectory).mean("step")
    diverged = ds["diverged"].astype(bool)
    fast = 1.0 / (1.0 + ds["diverged_at"].astype(float))
    return xr.where(diverged, fast, -np.maximum(decades, 0.0)).rename("convergence")
