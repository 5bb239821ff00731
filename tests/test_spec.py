"""Spec validation, TOML round trips and the default experiment's definition."""

from __future__ import annotations

import numpy as np
import pytest

import gradlab as gl

GOOD_TOML = """
steps = 20
batch_size = 32
loss = "cross_entropy"
optimizers = ["sgd", "adam", "clip_by_global_norm|sgd", "clip_by_global_norm|adam"]
metrics = ["default"]
[model]
hidden = [10, 10]
activation = "relu"
init = "lecun_normal"
[data]
name = "digits"
[grid]
seed = [0, 1, 2, 3]
learning_rate = { logspace = [-3, 0, 4] }
init_scale = [0.5, 1.0, 2.0, 4.0]
clip_norm = [1.0]
"""


def test_toml_example_of_the_design_parses():
    spec = gl.from_toml(GOOD_TOML)
    assert spec.model == gl.ModelSpec(hidden=(10, 10))
    assert spec.optimizers[2] == "clip_by_global_norm|sgd"
    np.testing.assert_allclose(spec.grid["learning_rate"], [1e-3, 1e-2, 1e-1, 1.0])
    assert spec.num_runs == 4 * 4 * 4 * 4 * 1


def test_toml_round_trip():
    spec = gl.from_toml(GOOD_TOML).replace(schedule="warmup_cosine", warmup_steps=5)
    again = gl.from_toml(gl.to_toml(spec))
    assert again == spec
    assert again.fingerprint() == spec.fingerprint()
    assert spec.fingerprint() != spec.replace(steps=21).fingerprint()


def test_default_experiment_is_the_articles_mlp():
    spec = gl.default_spec()
    assert spec.model.hidden == (10, 10) and spec.model.activation == "relu"
    assert spec.data.name == "mnist" and spec.batch_size == 32 and spec.loss == "cross_entropy"
    assert set(spec.optimizers) >= {
        "sgd",
        "momentum",
        "adam",
        "clip_by_global_norm|sgd",
        "clip_by_global_norm|adam",
    }
    assert len(spec.grid["seed"]) >= 4 and max(spec.grid["learning_rate"]) >= 1.0
    # As Keras' Dense starts them: Glorot-uniform kernels, zero biases (no bias_std axis).
    assert spec.model.init == "glorot_uniform" and spec.model.use_bias
    assert "bias_std" not in spec.grid


def test_shrunk_keeps_axes_and_cuts_cost():
    spec = gl.default_spec()
    small = spec.shrunk()
    assert small.steps == 20 and small.epochs is None
    assert list(small.grid) == list(spec.grid) and small.grid["seed"] == spec.grid["seed"][:2]
    assert small.data.n_train == 512


def spec_kwargs(**changes):
    kwargs = dict(
        model=gl.ModelSpec(hidden=(4,)),
        data=gl.DataSpec(name="digits"),
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [0.1]},
        steps=5,
    )
    kwargs.update(changes)
    return kwargs


# (field that the message must name, how to build the bad spec)
BAD_PYTHON = [
    ("model.hidden[1]", lambda: gl.ModelSpec(hidden=(4, 0))),
    ("model.hidden[0]", lambda: gl.ModelSpec(hidden=(-3,))),
    ("model.hidden[0]", lambda: gl.ModelSpec(hidden=(2.5,))),
    ("model.hidden", lambda: gl.ModelSpec(hidden="10")),
    ("model.activation", lambda: gl.ModelSpec(activation="relu6")),
    ("model.init", lambda: gl.ModelSpec(init="xavier")),
    ("model.use_bias", lambda: gl.ModelSpec(use_bias="yes")),
    ("data.name", lambda: gl.DataSpec(name="cifar10")),
    ("data.n_train", lambda: gl.DataSpec(n_train=0)),
    ("loss", lambda: gl.SweepSpec(**spec_kwargs(loss="hinge"))),
    ("optimizers[0]", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("sgdd",)))),
    ("optimizers[0]", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("clip_by_global_norm",)))),
    ("optimizers[0]", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("sgd|apply_if_finite",)))),
    ("optimizers", lambda: gl.SweepSpec(**spec_kwargs(optimizers=()))),
    ("optimizers", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("sgd", "sgd")))),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [-0.1]}))),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [0.0]}))),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": []}))),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [float("nan")]})),
    ),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": ["big"]}))),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": {"logspace": [0, -3, 4]}})),
    ),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [0.1, 0.1]})),
    ),
    (
        "grid.clip_norm",
        lambda: gl.SweepSpec(
            **spec_kwargs(optimizers=("clip_by_global_norm|sgd",), grid={"clip_norm": [0.0]})
        ),
    ),
    ("grid.clip_norm", lambda: gl.SweepSpec(**spec_kwargs(grid={"clip_norm": [1.0]}))),
    ("grid.seed", lambda: gl.SweepSpec(**spec_kwargs(grid={"seed": [0.5]}))),
    ("grid.seed", lambda: gl.SweepSpec(**spec_kwargs(grid={"seed": [-1]}))),
    (
        "grid.momentum",
        lambda: gl.SweepSpec(**spec_kwargs(optimizers=("momentum",), grid={"momentum": [1.5]})),
    ),
    ("grid.activation", lambda: gl.SweepSpec(**spec_kwargs(grid={"activation": ["swishy"]}))),
    ("grid.step", lambda: gl.SweepSpec(**spec_kwargs(grid={"step": [1]}))),
    ("grid.batch_size", lambda: gl.SweepSpec(**spec_kwargs(grid={"batch_size": [0]}))),
    ("steps", lambda: gl.SweepSpec(**spec_kwargs(steps=0))),
    ("steps", lambda: gl.SweepSpec(**spec_kwargs(steps=None))),
    ("steps", lambda: gl.SweepSpec(**spec_kwargs(epochs=2))),
    ("batch_size", lambda: gl.SweepSpec(**spec_kwargs(batch_size=-32))),
    ("metrics", lambda: gl.SweepSpec(**spec_kwargs(metrics=("sharpnes",)))),
    ("log_every", lambda: gl.SweepSpec(**spec_kwargs(log_every=0))),
    ("divergence_factor", lambda: gl.SweepSpec(**spec_kwargs(divergence_factor=1.0))),
    ("divergence_factor", lambda: gl.SweepSpec(**spec_kwargs(divergence_factor=float("inf")))),
    ("schedule", lambda: gl.SweepSpec(**spec_kwargs(schedule="linear"))),
    ("warmup_steps", lambda: gl.SweepSpec(**spec_kwargs(schedule="warmup_cosine"))),
    ("batch_order", lambda: gl.SweepSpec(**spec_kwargs(batch_order="random"))),
    ("model", lambda: gl.SweepSpec(**spec_kwargs(model="mlp"))),
    ("data", lambda: gl.SweepSpec(**spec_kwargs(data="mnist"))),
    # Values that would change on the way into the compiled program (issue 17).
    ("grid.seed", lambda: gl.SweepSpec(**spec_kwargs(grid={"seed": [2**31]}))),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [1e39]}))),
    ("grid.learning_rate", lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [1e-320]}))),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [0.1, 0.10000000001]})),
    ),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": {"logspace": [-1, -1, 3]}})),
    ),
    (
        "grid.learning_rate",
        lambda: gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [[0.1, 0.2]]})),
    ),
    ("optimizers", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("sgd", " sgd ")))),
    ("grid.b2", lambda: gl.SweepSpec(**spec_kwargs(optimizers=("adam",), grid={"b2": [1.0]}))),
    (
        "grid.momentum",
        lambda: gl.SweepSpec(**spec_kwargs(optimizers=("momentum",), grid={"momentum": [1.0]})),
    ),
    ("data.n_test", lambda: gl.DataSpec(n_test=-1)),
    (
        "loss",
        lambda: gl.SweepSpec(
            **spec_kwargs(data=gl.DataSpec(name="teacher", options={"task": "regression"}))
        ),
    ),
    ("loss", lambda: gl.SweepSpec(**spec_kwargs(data=gl.DataSpec(name="gaussian")))),
]


@pytest.mark.parametrize("field,build", BAD_PYTHON, ids=[f for f, _ in BAD_PYTHON])
def test_bad_python_spec_names_the_field(field, build):
    with pytest.raises(gl.ConfigError) as err:
        build()
    assert str(err.value).startswith(f"{field}:"), str(err.value)
    assert isinstance(err.value, ValueError)


def test_values_that_survive_the_way_in_are_kept():
    spec = gl.SweepSpec(**spec_kwargs(optimizers=(" clip_by_global_norm | sgd ",), grid={}))
    assert spec.optimizers == ("clip_by_global_norm|sgd",)  # one label per chain
    empty_test = gl.SweepSpec(**spec_kwargs(data=gl.DataSpec(name="digits", n_test=0)))
    assert empty_test.data.n_test == 0  # documented: an empty test set
    assert empty_test.shrunk().data.n_test == 0  # and shrinking keeps it empty
    ds = gl.run(empty_test.replace(steps=2), progress=False)
    assert np.isnan(ds.test_loss).all() and np.isfinite(ds.final_loss).all()
    ok = gl.SweepSpec(**spec_kwargs(grid={"learning_rate": [1e-30, 3e38], "seed": [2**31 - 1]}))
    assert ok.grid["learning_rate"] == (1e-30, 3e38)


BAD_TOML = [
    ("toml", "a = " + "[" * 800 + "]" * 800),  # deeper than the parser's recursion
    ("toml", "steps = \n"),
    ("toml", "[grid\nseed = [0]"),
    ("stepz", "stepz = 10\n"),
    ("steps", 'steps = "ten"\n'),
    ("model.depth", "steps = 5\n[model]\ndepth = 3\n"),
    ("model.hidden[0]", "steps = 5\n[model]\nhidden = [0]\n"),
    ("optimizers", 'steps = 5\noptimizers = "sgd"\n'),
    ("grid.learning_rate", "steps = 5\n[grid]\nlearning_rate = { logspace = [-3, 0] }\n"),
    ("grid.learning_rate", "steps = 5\n[grid]\nlearning_rate = { range = [1, 2, 3] }\n"),
    ("grid.warp", "steps = 5\n[grid]\nwarp = [1.0]\n"),
    ("data.name", 'steps = 5\n[data]\nname = "imagenet"\n'),
]


@pytest.mark.parametrize(
    "field,text", BAD_TOML, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_TOML)]
)
def test_bad_toml_names_the_field(field, text):
    with pytest.raises(gl.ConfigError) as err:
        gl.from_toml(text)
    assert str(err.value).startswith(f"{field}:"), str(err.value)


def test_unknown_stage_lists_valid_stages():
    with pytest.raises(gl.ConfigError, match="valid stages: sgd, momentum"):
        gl.SweepSpec(**spec_kwargs(optimizers=("lion",)))


def test_grid_axis_nothing_reads_lists_what_is_read():
    with pytest.raises(gl.ConfigError, match=r"read here: .*learning_rate"):
        gl.SweepSpec(**spec_kwargs(grid={"b1": [0.9]}))
    # ... but an Adam chain reads b1, and a callable chain may read anything.
    gl.SweepSpec(**spec_kwargs(optimizers=("adam",), grid={"b1": [0.9]}))
    gl.SweepSpec(**spec_kwargs(optimizers=(lambda hp: None,), grid={"anything": [1.0]}))


def test_data_errors_are_config_errors_before_compiling(tmp_path):
    x = np.ones((10, 3), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(gl.ConfigError, match="x_train"):
        gl.data.from_arrays(x, np.zeros(10, np.int32))
    spec = gl.SweepSpec(**spec_kwargs(batch_size=5000))
    with pytest.raises(gl.ConfigError, match=r"^batch_size:"):
        gl.run(spec, out=str(tmp_path / "never"), progress=False)
    assert not (tmp_path / "never").exists()


def test_a_full_batch_sweep_survives_its_toml():
    """TOML has no null: to_toml leaves batch_size=None out, and a sweep without batch_size is
    full-batch (as the README documents), so replaying a full-batch sweep from its Dataset's
    spec text does not silently train on batches of 32."""
    full = gl.SweepSpec(steps=2, batch_size=None)
    assert "batch_size" not in full.toml
    assert gl.from_toml(full.toml).batch_size is None
    assert gl.from_toml(full.toml).fingerprint() == full.fingerprint()
    assert gl.from_toml(gl.SweepSpec(steps=2, batch_size=8).toml).batch_size == 8
