"""gradlab.analysis.fits: power-law exponents and crossings of measured curves."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gradlab import analysis


def test_power_law_exponent_recovers_known_exponents():
    s = [0.5, 1.0, 2.0, 4.0]
    x = xr.DataArray(s, dims="init_scale", coords={"init_scale": s})
    y = xr.concat([3.0 * x**2, 0.1 * x**-1.5, x * 0 + np.nan], dim="chain")
    y[0, 1] = np.inf  # a non-finite point is left out
    np.testing.assert_allclose(analysis.power_law_exponent(y, "init_scale")[:2], [2.0, -1.5])
    assert np.isnan(analysis.power_law_exponent(y, "init_scale")[2])


def test_power_law_exponent_of_a_constant_is_exactly_zero():
    # the optimal learning rate at every width the same grid point: a slope of 0, not 1e-17
    widths = [64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0]
    eta = xr.DataArray([10**-2.5] * 7, dims="width", coords={"width": widths})
    assert float(analysis.power_law_exponent(eta, "width")) == 0.0


def test_crossing_interpolates_the_first_crossing():
    s = [1.0, 2.0, 3.0, 4.0]
    y = xr.DataArray(
        [[0.5, 0.8, 1.25, 2.0], [2.0, 1.0, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4]],
        dims=("row", "s"),
        coords={"s": s},
    )
    got = analysis.crossing(y, "s")
    assert got.dims == ("row",)
    # row 0: log 0.8 = -0.223, log 1.25 = 0.223 -> halfway between 2 and 3
    assert float(got[0]) == pytest.approx(2.5)
    assert float(got[1]) == 2.0  # exactly at the level
    assert np.isnan(float(got[2]))  # never crosses
    lin = analysis.crossing(y.isel(row=0), "s", level=1.0, log=False)
    assert float(lin) == pytest.approx(2 + 0.2 / 0.45)
    unsorted = y.isel(s=[3, 0, 2, 1])
    xr.testing.assert_allclose(analysis.crossing(unsorted, "s"), got)
