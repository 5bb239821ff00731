"""The command line, run as a user runs it: a real subprocess (the bad fields of a config also
through ``cli.main`` in this process, one of them in a subprocess too)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import gradlab as gl
from gradlab import cli


def gradlab(*args, cwd, env=None, timeout=900):
    env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gradlab", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["report", "--help"],
        ["data", "download", "--help"],
        ["export", "--help"],
    ],
)
def test_help_everywhere(args, tmp_path):
    result = gradlab(*args, cwd=tmp_path)
    assert result.returncode == 0 and "usage: gradlab" in result.stdout


BAD_CONFIGS = {
    "grid.learning_rate": "steps = 5\n[grid]\nlearning_rate = [-1.0]\n",
    "toml": "steps = = 5\n",
    "model.activation": 'steps = 5\n[model]\nactivation = "relu7"\n',
    "optimizers[1]": 'steps = 5\noptimizers = ["sgd", "adamm"]\n',
}


def one_line_refusal(rc: int, stderr: str, field: str, cwd) -> None:
    """Exit status 2, one line naming the field, no traceback, nothing written."""
    assert rc == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gradlab: error: {field}:"), stderr
    assert "Traceback" not in stderr
    assert not (cwd / "runs").exists()


@pytest.mark.parametrize("field", sorted(BAD_CONFIGS))
def test_invalid_config_exits_2_with_one_line(field, tmp_path, monkeypatch, capsys):
    """Each bad field through the command's entry point, in this process."""
    config = tmp_path / "bad.toml"
    config.write_text(BAD_CONFIGS[field])
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["run", str(config), "--out", "runs/bad"])
    one_line_refusal(rc, capsys.readouterr().err, field, tmp_path)


def test_invalid_config_in_a_real_process_is_one_line(tmp_path):
    """The same refusal from ``python -m gradlab``: a fresh process adds nothing to stderr."""
    config = tmp_path / "bad.toml"
    config.write_text(BAD_CONFIGS["grid.learning_rate"])
    result = gradlab("run", str(config), "--out", "runs/bad", cwd=tmp_path)
    one_line_refusal(result.returncode, result.stderr, "grid.learning_rate", tmp_path)


def test_missing_config_file_exits_2(tmp_path):
    result = gradlab("run", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("gradlab: error: config:")


@pytest.mark.slow
def test_default_experiment_shrunk(tmp_path):
    result = gradlab("run", "--no-progress", cwd=tmp_path, env={"GRADLAB_FAST": "1"})
    assert result.returncode == 0, result.stderr
    for chain in ("sgd", "momentum", "adam", "clip_by_global_norm|sgd", "clip_by_global_norm|adam"):
        assert chain in result.stdout
    ds = gl.load(tmp_path / "runs" / "default")
    assert list(ds.optimizer.values)[:3] == ["sgd", "momentum", "adam"]
    assert ds.sizes["seed"] == 2 and ds.diverged.any() and not ds.diverged.all()
    assert (tmp_path / "runs" / "default" / "report" / "index.html").exists()
    # The same command again resumes: nothing is recomputed.
    again = gradlab("run", "--no-progress", "--no-report", cwd=tmp_path, env={"GRADLAB_FAST": "1"})
    assert again.returncode == 0
    assert gl.load(tmp_path / "runs" / "default").attrs["sessions"] == 1  # no second session


@pytest.mark.slow  # a CLI subprocess: compile and report
def test_run_from_config_and_report(tmp_path):
    config = tmp_path / "small.toml"
    config.write_text(
        'steps = 8\nbatch_size = 16\noptimizers = ["sgd", "clip_by_global_norm|sgd"]\n'
        '[model]\nhidden = [8]\n[data]\nname = "digits"\nn_train = 256\n'
        "[grid]\nseed = [0, 1]\nlearning_rate = { logspace = [-2, 2, 3] }\n"
    )
    result = gradlab(
        "run", str(config), "--no-progress", "--no-report", "--chunk-size", "2", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    ds = gl.load(tmp_path / "runs" / "small")
    assert ds.sizes == {"optimizer": 2, "seed": 2, "learning_rate": 3, "step": 8, "layer": 2}
    report = gradlab("report", "runs/small", "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "rep" / "index.html").exists()
