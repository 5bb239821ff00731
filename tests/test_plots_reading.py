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
    # the length-one axis is a fixed value, named before what is pooled
    assert reading.pool_note(ds, ["seed", "clip_norm", "learning_rate"]) == (
        "learning_rate = 0.1; 6 runs per point (seed × clip_norm)"
    )
    assert reading.pool_note(ds, ["learning_rate"], per="chain") == (
        "learning_rate = 0.1; 1 run per chain"
    )
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


def test_select_names_a_missing_value_and_the_axis_values():
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 1.0]})
    with pytest.raises(ValueError, match=r"learning_rate = 0\.3 is not .* \[0\.1, 1\.0\]"):
        reading.select(ds, {"learning_rate": 0.3})
    with pytest.raises(ValueError, match=r"optimizer = 'adam' is not"):
        reading.select(ds, {"optimizer": "adam"})


def test_fixed_values_are_the_selected_values_and_the_length_one_axes():
    ds = make_dataset({"seed": [0, 1], "activation": ["relu", "tanh"], "clip_norm": [1.0]})
    assert reading.fixed_values(ds) == [("clip_norm", 1.0)]
    picked = reading.select(ds, {"activation": "tanh", "optimizer": "sgd"})
    assert reading.fixed_values(picked) == [("activation", "tanh"), ("clip_norm", 1.0)]
    assert reading.pool_note(picked, ["seed"]) == (
        "activation = tanh, clip_norm = 1; 2 runs per point (seed)"
    )
    one_step = picked.isel(step=0, layer=0)  # steps and layers are not grid values
    assert reading.fixed_values(one_step) == reading.fixed_values(picked)


def test_facets_lay_out_chains_and_the_row_and_col_axes():
    ds = make_dataset({"seed": [0, 1], "activation": ["relu", "tanh"], "init": ["he", "lecun"]})
    panels, ncols = reading.facets(ds)
    assert ncols == 2 and [p.title for p in panels] == ["sgd", "clip_by_global_norm|adam"]
    panels, ncols = reading.facets(ds, col="activation")  # chains down, activations across
    assert ncols == 2
    assert [p.pick for p in panels] == [
        {"optimizer": c, "activation": a}
        for c in ("sgd", "clip_by_global_norm|adam") for a in ("relu", "tanh")
    ]  # fmt: skip
    panels, ncols = reading.facets(ds, row="init", col="activation", by_chain=False)
    assert ncols == 2
    assert [p.title for p in panels] == [
        "init = he, activation = relu", "init = he, activation = tanh",
        "init = lecun, activation = relu", "init = lecun, activation = tanh",
    ]  # fmt: skip
    panels, ncols = reading.facets(ds, row="activation")  # activations down, chains across
    assert ncols == 2 and panels[1].title == "clip_by_global_norm|adam, activation = relu"
    with pytest.raises(ValueError, match="'depth' is not a grid axis"):
        reading.facets(ds, col="depth")


@pytest.mark.parametrize(
    ("spec", "coords", "expected"),
    [
        ('[model]\nhidden = [10]\ninit = "he_normal"\n', {}, "he_normal"),
        ('steps = 8\n', {}, None),  # no [model]: a user's module, scheme unknown
        (None, {}, None),  # no spec recorded
        ('# depth = 4\n[model]\ninit = "normal"\n# depth = 8\n[model]\ninit = "normal"\n', {},
         "normal"),  # concat_sweeps: the specs one after another (not one TOML document)
        ('# depth = 4\n[model]\ninit = "normal"\n# depth = 8\n[model]\ninit = "he_normal"\n', {},
         None),
        ('[model]\ninit = "normal"\n', {"init": ["he_normal", "lecun_normal"]}, None),  # varies
        ('[model]\ninit = "normal"\n', {"init": ["he_normal"]}, "he_normal"),  # the grid's own
    ],
)  # fmt: skip
def test_init_scheme_is_read_from_the_grid_or_the_spec(spec, coords, expected):
    grid = {"seed": [0, 1], **coords}
    ds = make_dataset(grid)
    ds.attrs.pop("spec")
    if spec is not None:
        ds.attrs["spec"] = spec
    assert reading.init_scheme(ds) == expected
    label = reading.axis_label(ds, "init_scale")
    assert label == (r"init scale $\sigma_w$" if expected == "normal" else
                     f"init scale (× σ of {expected or 'the init scheme'})")  # fmt: skip
