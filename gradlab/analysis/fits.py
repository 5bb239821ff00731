"""Reading a measured curve: how it scales, and where it crosses a level.

Two small tools for DataArrays of measurements along one numeric axis: the exponent of a power
law (:func:`power_law_exponent`, e.g. gradient norm against init scale) and the point where the
curve first crosses a level (:func:`crossing`, e.g. where the measured χ1 crosses 1). They read
a DataArray, not a Dataset, and know nothing of sweeps.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from gradlab.analysis.selection import quiet_nan_warnings

__all__ = ["crossing", "power_law_exponent"]


def power_law_exponent(da: xr.DataArray, dim: str) -> xr.DataArray:
    r"""Least-squares slope of ``log |y|`` against ``log x`` along ``dim``: y ∝ x^k.

    .. math:: k = \frac{\sum_i (u_i - \bar u)(v_i - \bar v)}{\sum_i (u_i - \bar u)^2},
       \quad u = \log x, \; v = \log |y|

    Non-finite or zero values are left out; NaN where fewer than two points remain. E.g. the
    gradient norm at initialisation against the init scale σ_w grows as σ_w^k, with k the
    number of weight matrices the gradient passes through.

    Args:
      da: values with a positive numeric coordinate ``dim``.
      dim: the axis to fit along.

    Returns:
      The exponent k, over the other dims of ``da``.

    Example:
      >>> x = xr.DataArray([1.0, 2.0, 4.0], dims="s", coords={"s": [1.0, 2.0, 4.0]})
      >>> round(float(power_law_exponent(x**3, "s")), 6)
      3.0
    """
    x = np.log(da[dim].astype(float))
    with quiet_nan_warnings():
        y = np.log(np.abs(da.astype(float)))
        ok = np.isfinite(y) & np.isfinite(x)
        u, v = x.where(ok), y.where(ok)
        # centring v on its median (the slope is the same for any constant, as Σ du = 0) makes
        # a constant series exactly 0 rather than a rounding residue like 3.5e-17
        du, dv = u - u.mean(dim), v - v.median(dim)
        slope = (du * dv).sum(dim) / (du**2).sum(dim)
    return slope.where(ok.sum(dim) >= 2).rename("exponent")


def crossing(da: xr.DataArray, dim: str, level: float = 1.0, log: bool = True) -> xr.DataArray:
    r"""Where a measured curve first crosses ``level`` along ``dim``, by linear interpolation.

    Along ``dim`` sorted ascending, with :math:`v = \log y` (or :math:`y` when ``log`` is
    false) and the first pair of neighbours :math:`(x_i, x_{i+1})` that brackets the level
    :math:`\ell`:

    .. math:: x^* = x_i + (x_{i+1} - x_i)\,\frac{\ell - v_i}{v_{i+1} - v_i}

    E.g. the measured critical init scale: where the empirical χ1 crosses 1 along
    ``init_scale``, to compare with :func:`gradlab.theory.critical_sigma_w2`.

    Args:
      da: values with a numeric coordinate ``dim`` (e.g. the median
        :func:`gradlab.analysis.empirical_chi1`).
      dim: the axis to search along.
      level: the level to cross.
      log: interpolate in ``log y`` (right for χ1, which is geometric).

    Returns:
      The crossing point over the other dims of ``da``; NaN where the curve does not cross.

    Example:
      >>> x = xr.DataArray([0.5, 0.8, 1.25, 2.0], dims="s", coords={"s": [1.0, 2.0, 3.0, 4.0]})
      >>> round(float(crossing(x, "s")), 3)
      2.5
    """
    da = da.sortby(dim)
    xs = da[dim].values.astype(float)
    ref = math.log(level) if log else level

    def first(y: np.ndarray) -> float:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.log(y) - ref if log else y - ref
        for i in range(len(v) - 1):
            a, b = v[i], v[i + 1]
            if np.isfinite(a) and np.isfinite(b) and a * b <= 0 and a != b:
                return float(xs[i] + (xs[i + 1] - xs[i]) * (-a) / (b - a))
            if np.isfinite(a) and a == 0:
                return float(xs[i])
        return math.nan

    out = xr.apply_ufunc(
        first, da.astype(float), input_core_dims=[[dim]], vectorize=True, output_dtypes=[float]
    )
    return out.rename(f"{dim}_crossing")
