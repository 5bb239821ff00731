"""gradlab.plots.reading: selection, axis checks, sorting and pooling notes of a Dataset."""

from __future__ import annotations

import numpy as np
import pytest
from plot_datasets import make_dataset

from gradlab.plots import reading


def test_select_and_check_axis_name_the_unknown_axis():
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 1.0]})
    picked = reading.select(ds, {"learning_rate": 1.0})
    assert "learning_rate" not in picked.dims
    np.testing.assert_array_equal(picked["diverged"], ds["diverged"].isel(learning_rate=1))
    assert reading.select(ds, None) is ds
    one = reading.select(ds, {"optimizer": "sgd"})  # one chain: still a panel of its own
    assert list(one["optimizer"].values) == ["sgd"]
    np.testing.assert_array_equal(one["diverged"][0], ds["diverged"].sel(optimizer="sgd"))
    with pytest.raises(ValueError, match=r"sel names \['momentum'\]"):
        reading.select(ds, {"momentum": 0.9})
    reading.check_axis(ds, "learning_rate")
    reading.check_axis(ds, None)
    with pytest.raises(ValueError, match="'step' is not a grid axis"):
        reading.check_axis(ds, "step")


def test_sort_axes_sorts_numbers_and_keeps_strings_in_grid_order():
    ds = make_dataset({"learning_rate": [1.0, 0.01, 0.1], "activation": ["tanh", "relu"]})
    ds = reading.sort_axes(ds, "learning_rate", "activation", None)
    np.testing.assert_array_equal(ds["learning_rate"], [0.01, 0.1, 1.0])
    assert list(ds["activation"].values) == ["tanh", "relu"]


def test_pool_note_counts_the_pooled_runs_and_leaves_out_length_one_axes():
    ds = make_dataset({"seed": [0, 1, 2], "clip_norm": [1.0, 2.0], "learning_rate": [0.1]})
    assert reading.pool_note(ds, ["seed", "clip_norm", "learning_rate"]) == (
        "6 runs per point (seed × clip_norm)"
    )
    assert reading.pool_note(ds, ["learning_rate"], per="chain") == "1 run per chain"
    assert reading.grid_note(ds) == "3 seed × 2 clip_norm × 1 learning_rate"


def test_default_hue_prefers_the_learning_rate_then_the_first_swept_axis():
    both = make_dataset({"seed": [0, 1], "init_scale": [1.0, 2.0], "learning_rate": [0.1, 1.0]})
    assert reading.default_hue(both) == "learning_rate"
    assert reading.default_hue(make_dataset({"seed": [0, 1], "init_scale": [1, 2]})) == "init_scale"
    assert reading.default_hue(make_dataset({"seed": [0, 1], "learning_rate": [0.1]})) is None


def test_runs_matrix_stacks_the_pooled_axes_into_rows():
    ds = make_dataset({"seed": [0, 1], "init_scale": [1.0, 2.0, 4.0]}, steps=5)
    da = ds["grad_norm"].sel(optimizer="sgd")
    m = reading.runs_matrix(da, ["init_scale", "seed"], "step")
    assert m.shape == (6, 5)
    np.testing.assert_array_equal(m[1], da.sel(init_scale=1.0, seed=1).values)
    np.testing.assert_array_equal(m[4], da.sel(init_scale=4.0, seed=0).values)
