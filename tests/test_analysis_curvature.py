"""gradlab.analysis.curvature: sharpness against its bound, the predicted lr boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from analysis_datasets import comparison_dataset, dataset

from gradlab import analysis


def test_predicted_lr_boundary_and_momentum():
    grid = {"learning_rate": [0.1, 1.0], "init_scale": [1.0, 2.0]}
    ds = dataset(np.full((1, 2, 2), -1), grid, chains=("sgd",))
    lam = xr.DataArray([10.0, 40.0], dims="init_scale", coords={"init_scale": [1.0, 2.0]})
    sharp = (lam + 0 * ds["loss"]).where(ds["step"] >= 1)  # first computed at step 1
    ds["sharpness"] = sharp
    eta = analysis.predicted_lr_boundary(ds)
    assert eta.dims == ("optimizer", "init_scale")
    np.testing.assert_allclose(eta.squeeze(), [0.2, 0.05])
    np.testing.assert_allclose(
        analysis.predicted_lr_boundary(ds, momentum=0.9).squeeze(), [0.38, 0.095]
    )
    mom = ds.expand_dims(momentum=[0.0, 0.5]).transpose("optimizer", "momentum", ...)
    eta_m = analysis.predicted_lr_boundary(mom)
    np.testing.assert_allclose(eta_m.sel(init_scale=1.0).squeeze(), [0.2, 0.3])
    with pytest.raises(ValueError, match="sharpness"):
        analysis.predicted_lr_boundary(ds.drop_vars("sharpness"))


def test_edge_of_stability_summary():
    grid = {"learning_rate": [0.1, 0.2]}
    at = np.array([[-1, 6], [-1, -1]])
    steps = np.arange(8)
    ds = dataset(at, grid).reindex(step=steps)
    ds["diverged_at"] = ds["diverged_at"].copy(data=at)
    bound = (2.0 / ds["learning_rate"]).broadcast_like(ds["diverged_at"]).expand_dims(step=steps)
    ratio = np.full((2, 2, 8), np.nan)
    ratio[0, 0, ::2] = [0.5, 0.95, 1.1, 1.0]  # sgd, lr 0.1: reaches the edge at step 2
    ratio[0, 1, ::2] = [0.5, 0.6, 0.7, 2.0]  # sgd, lr 0.2: diverged at 6 (its 2.0 counts)
    ratio[1, 0, ::2] = [9.0, 0.5, 0.92, 0.98]  # adam-like: a spike at the first step
    ds["sharpness_bound"] = bound.transpose("optimizer", "learning_rate", "step")
    ds["sharpness"] = ds["sharpness_bound"] * ratio
    eos = analysis.edge_of_stability(ds)
    sgd = eos.sel(optimizer="sgd")
    assert float(sgd["reached_at"].sel(learning_rate=0.1)) == 2
    assert float(sgd["ratio"].sel(learning_rate=0.1)) == pytest.approx(1.0)
    assert float(sgd["initial"].sel(learning_rate=0.1)) == pytest.approx(0.5 * 20)
    assert float(sgd["reached_at"].sel(learning_rate=0.2)) == 6
    assert float(sgd["peak_ratio"].sel(learning_rate=0.2)) == 2.0
    adam = eos.sel(optimizer="adam", learning_rate=0.1)
    assert float(adam["reached_at"]) == 0
    later = analysis.edge_of_stability(ds, start=1).sel(optimizer="adam", learning_rate=0.1)
    assert float(later["reached_at"]) == 4 and float(later["ratio"]) == pytest.approx(0.95)
    assert np.isnan(float(eos["reached_at"].sel(optimizer="adam", learning_rate=0.2)))
    with pytest.raises(ValueError, match="precond_sharpness"):
        analysis.edge_of_stability(ds, "precond_sharpness")


def test_adam_sharpness_ratio_uses_preconditioned_sharpness():
    """Adam's bound (2+2β1)/(η(1−β1)) bounds λ_max(P⁻¹H), not λ_max(H)."""
    ds = comparison_dataset().assign_coords(
        optimizer=["sgd", "adam"], stability_rule=("optimizer", ["sgd", "adam"])
    )
    bound = ds["sharpness_bound"]
    ds["precond_sharpness"] = xr.full_like(bound, np.nan)
    ds["precond_sharpness"].loc[{"optimizer": "adam", "step": 0}] = 0.9 * bound.sel(
        optimizer="adam", step=0
    )
    df = analysis.compare_optimizers(ds)
    assert df.loc["adam", "sharpness_ratio"] == pytest.approx(0.9)
    assert df.loc["sgd", "sharpness_ratio"] == pytest.approx(1.5)  # plain sharpness for SGD
    only_plain = analysis.compare_optimizers(ds.drop_vars("precond_sharpness"))
    assert math.isnan(only_plain.loc["adam", "sharpness_ratio"])


def rules_dataset(rules: list[str]) -> xr.Dataset:
    """Four chains with the given rules; sharpness = 1.5 x bound, precond_sharpness = 0.5 x."""
    chains = ["adam", "momentum", "sgd", "my_chain"]  # names that say nothing about the rules
    ds = dataset(np.full((4, 2), -1), {"learning_rate": [0.1, 1.0]}, chains=chains)
    ds = ds.assign_coords(stability_rule=("optimizer", rules))
    bound = 2.0 / ds["learning_rate"] + 0 * ds["loss"]
    return ds.assign(sharpness_bound=bound, sharpness=1.5 * bound, precond_sharpness=0.5 * bound)


def test_bounded_sharpness_follows_the_stability_rule_coordinate_not_the_chain_name():
    ds = rules_dataset(["sgd", "adam", "momentum", ""])
    ratio = (analysis.bounded_sharpness(ds) / ds["sharpness_bound"]).isel(step=0)
    np.testing.assert_allclose(ratio.sel(optimizer="adam"), 1.5)  # rule "sgd": λ_max(H)
    np.testing.assert_allclose(ratio.sel(optimizer="momentum"), 0.5)  # rule "adam": λ(P⁻¹H)
    np.testing.assert_allclose(ratio.sel(optimizer="sgd"), 1.5)  # rule "momentum": λ_max(H)
    assert ratio.sel(optimizer="my_chain").isnull().all()  # no known rule
    df = analysis.compare_optimizers(ds)
    np.testing.assert_allclose(df["sharpness_ratio"].values[:3], [1.5, 0.5, 1.5])
    assert math.isnan(df.loc["my_chain", "sharpness_ratio"])


def test_a_dataset_without_stability_rules_has_no_known_rule():
    """A Dataset from an older gradlab: no chain's bound is matched to a curvature."""
    ds = rules_dataset(["sgd", "adam", "momentum", ""]).drop_vars("stability_rule")
    assert analysis.bounded_sharpness(ds).isnull().all()
    assert analysis.compare_optimizers(ds)["sharpness_ratio"].isna().all()
