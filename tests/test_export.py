"""gradlab.export: a real sweep exported to TensorBoard, read back with TensorBoard's own reader.

TensorBoard's ``EventAccumulator`` and its HParams plugin's metadata parsers (a test-only
dependency, ``tensorboard`` in the ``dev`` extra) read what tensorboardX wrote; every number is
compared with the Dataset, looked up by coordinate (``ds.sel``) from run names built here by hand.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

import gradlab as gl
from gradlab import export

CHAINS = ("sgd", "clip_by_global_norm|adam")
SEEDS = (0, 1)
RATES = (0.01, 50.0)  # 50 diverges at once with both chains
FINAL = ("diverged", "diverged_at", "final_loss", "test_loss", "test_accuracy")
OF_UPDATE = {"update_norm", "clipped", "skipped", "update_ratio_layer"}  # the schema's, by hand

pytestmark = pytest.mark.slow  # one sweep to export, a CLI subprocess


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished run directory of a tiny sweep in which one learning rate diverges."""
    out = tmp_path_factory.mktemp("export") / "run"
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(8,)),
        data=gl.DataSpec(name="digits", n_train=64, n_test=16),
        optimizers=CHAINS,
        grid={"seed": list(SEEDS), "learning_rate": list(RATES)},
        steps=5,
        batch_size=16,
    )
    gl.run(spec, out=str(out), progress=False)
    ds = gl.load(out)
    assert ds.diverged.sel(learning_rate=50.0).all()
    assert not ds.diverged.sel(learning_rate=0.01).any()
    return out, ds


@pytest.fixture(scope="module")
def exported(sweep, tmp_path_factory):
    out, _ = sweep
    logdir = tmp_path_factory.mktemp("tb")
    runs = export.tensorboard(out, logdir)
    return logdir, runs


def points():
    """Every grid point with its run name, written out by hand."""
    for chain in CHAINS:
        for seed in SEEDS:
            for rate in RATES:
                name = f"optimizer={chain},seed={seed},learning_rate={rate}"
                yield name, {"optimizer": chain, "seed": seed, "learning_rate": rate}


PARSERS = {
    metadata.EXPERIMENT_TAG: metadata.parse_experiment_plugin_data,
    metadata.SESSION_START_INFO_TAG: metadata.parse_session_start_info_plugin_data,
    metadata.SESSION_END_INFO_TAG: metadata.parse_session_end_info_plugin_data,
}


def read(run_dir):
    """``({tag: [(step, value), ...]}, {hparams tag: parsed plugin data})`` of one run
    directory, as TensorBoard reads it."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    assert set(content) == set(PARSERS)
    return scalars, {tag: PARSERS[tag](data) for tag, data in content.items()}


def expected_scalars(ds, point):
    """The points TensorBoard should show for one run: every non-NaN value up to the step of
    divergence (before it for the variables that describe the step's update)."""
    run = ds.sel(point)
    at = int(run.diverged_at)
    steps = ds.step.values
    expected = {}
    for name, variable in gl.schema.VARIABLES.items():
        if variable.dims == () or name not in ds:
            continue
        layers = [None] if variable.dims == ("step",) else list(ds.layer.values)
        for layer in layers:
            series = run[name] if layer is None else run[name].sel(layer=layer)
            tag = name if layer is None else f"{name}/{layer}"
            stands = steps < at if name in OF_UPDATE else steps <= at
            if at < 0:
                stands = np.ones(steps.shape, bool)
            values = series.values.astype(np.float32)
            keep = stands & ~np.isnan(values)
            pairs = zip(steps[keep], values[keep], strict=True)
            expected[tag] = [(int(s), float(v)) for s, v in pairs]
    return {tag: pairs for tag, pairs in expected.items() if pairs}


def test_one_directory_per_run(sweep, exported):
    logdir, runs = exported
    names = [name for name, _ in points()]
    assert [r.name for r in runs] == names
    assert sorted(p.name for p in logdir.iterdir()) == sorted(names)
    for run in runs:
        assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_scalars_equal_the_dataset_at_every_logged_step(sweep, exported):
    _, ds = sweep
    logdir, _ = exported
    for name, point in points():
        scalars, _ = read(logdir / name)
        step_tags = {t: v for t, v in scalars.items() if t not in FINAL}
        assert step_tags == expected_scalars(ds, point), name
        assert "grad_norm_layer/0" in step_tags and "grad_norm_layer/1" in step_tags
        at = int(ds.diverged_at.sel(point))
        if point["learning_rate"] == 50.0:
            # Diverged: the loss stands up to and including the step of divergence, the flags
            # of an update never applied do not (the Dataset holds False there, not NaN).
            assert 0 <= at < ds.step.values[-1]
            assert [s for s, _ in scalars["loss"]] == list(range(at + 1))
            assert [s for s, _ in scalars["clipped"]] == list(range(at))
        else:
            assert at == -1 and [s for s, _ in scalars["loss"]] == list(ds.step.values)


def test_hparams_plugin_lists_every_grid_axis_and_the_final_metrics(sweep, exported):
    _, ds = sweep
    logdir, _ = exported
    for name, point in points():
        scalars, hparams = read(logdir / name)
        start = hparams[metadata.SESSION_START_INFO_TAG]
        assert start.hparams["optimizer"].string_value == point["optimizer"]
        assert start.hparams["seed"].number_value == point["seed"]
        assert start.hparams["learning_rate"].number_value == point["learning_rate"]
        assert set(start.hparams) == {"optimizer", "seed", "learning_rate"}

        experiment = hparams[metadata.EXPERIMENT_TAG]
        infos = {i.name: i for i in experiment.hparam_infos}
        assert list(infos) == ["optimizer", "seed", "learning_rate"]
        assert [v.string_value for v in infos["optimizer"].domain_discrete.values] == list(CHAINS)
        assert [v.number_value for v in infos["learning_rate"].domain_discrete.values] == [*RATES]
        assert infos["seed"].type == api_pb2.DATA_TYPE_FLOAT64
        assert {m.name.tag for m in experiment.metric_infos} == set(FINAL)

        run = ds.sel(point)
        for metric in FINAL:
            value = float(run[metric])
            if np.isnan(value):  # a diverged run's losses: no point, not NaN
                assert metric not in scalars, (name, metric)
            else:
                assert [v for _, v in scalars[metric]] == [np.float32(value)], (name, metric)
        end = hparams[metadata.SESSION_END_INFO_TAG]
        diverged = bool(run.diverged)
        assert end.status == (api_pb2.STATUS_FAILURE if diverged else api_pb2.STATUS_SUCCESS)
        assert ("final_loss" in scalars) == (not diverged)


def test_infinity_at_divergence_is_written_nan_and_dead_flags_are_not(tmp_path, caplog):
    """A hand-built sweep logged every 2 steps: at lr = 3 the run diverges at step 4 with an
    infinite loss; sharpness is measured every 4 steps."""
    nan, inf = np.nan, np.inf
    per_step, per_run = ("optimizer", "learning_rate", "step"), ("optimizer", "learning_rate")
    ds = xr.Dataset(
        {
            "loss": (per_step, np.float32([[[1.0, 0.5, 0.4, 0.3], [1.0, 2.0, inf, nan]]])),
            "sharpness": (per_step, np.float32([[[3.0, nan, 5.0, nan], [3.0, nan, 7.0, nan]]])),
            "clipped": (per_step, np.array([[[True, False, True, False], [True] * 3 + [False]]])),
            "diverged": (per_run, np.array([[False, True]])),
            "diverged_at": (per_run, np.int32([[-1, 4]])),
            "final_loss": (per_run, np.float32([[0.25, nan]])),
        },
        coords={"optimizer": ["sgd"], "learning_rate": [0.1, 3.0], "step": [0, 2, 4, 6]},
    )
    export.tensorboard(ds, tmp_path)
    stable, _ = read(tmp_path / "optimizer=sgd,learning_rate=0.1")
    assert stable == {
        "loss": [(0, 1.0), (2, 0.5), (4, np.float32(0.4)), (6, np.float32(0.3))],
        "sharpness": [(0, 3.0), (4, 5.0)],
        "clipped": [(0, 1.0), (2, 0.0), (4, 1.0), (6, 0.0)],
        "diverged": [(6, 0.0)],
        "diverged_at": [(6, -1.0)],
        "final_loss": [(6, 0.25)],
    }
    diverged, hparams = read(tmp_path / "optimizer=sgd,learning_rate=3.0")
    assert diverged == {
        "loss": [(0, 1.0), (2, 2.0), (4, inf)],
        "sharpness": [(0, 3.0), (4, 7.0)],
        "clipped": [(0, 1.0), (2, 1.0)],  # the update of step 4 was never applied
        "diverged": [(6, 1.0)],
        "diverged_at": [(6, 4.0)],
    }
    assert hparams[metadata.SESSION_START_INFO_TAG].hparams["learning_rate"].number_value == 3.0
    assert not [r for r in caplog.records if r.name.startswith("tensorboardX")]


def test_second_export_refused_unless_overwrite(sweep, tmp_path):
    _, ds = sweep
    export.tensorboard(ds, tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        export.tensorboard(ds, tmp_path)
    runs = export.tensorboard(ds, tmp_path, overwrite=True)
    name, point = next(points())
    assert all(len(list(r.glob("events.out.tfevents.*"))) == 1 for r in runs)
    scalars, _ = read(tmp_path / name)
    assert {t: v for t, v in scalars.items() if t not in FINAL} == expected_scalars(ds, point)


def test_missing_writer_names_the_extra(sweep, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX fails
    with pytest.raises(ImportError, match=r"gradlab\[tensorboard\]"):
        export.tensorboard(sweep[1], tmp_path)
    assert not list(tmp_path.iterdir())


def gradlab(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "gradlab", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_writes_the_same_runs(sweep, exported, tmp_path):
    out, _ = sweep
    logdir, _ = exported
    result = gradlab("export", str(out), "--tensorboard", "tb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == sorted(n for n, _ in points())
    for name, _ in points():
        assert read(tmp_path / "tb" / name) == read(logdir / name)


def test_cli_missing_run_directory_exits_2(tmp_path):
    result = gradlab("export", "nope", "--tensorboard", "tb", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradlab: error: run_dir:"), result.stderr
    assert not (tmp_path / "tb").exists()
