"""Progress of ``gl.run``: compilation as its own phase, the bar moving within a chunk from the
program's reports with ``progress="steps"`` (once per reporting block, not once per run), per
chunk with ``progress=True``, and the same numbers with the callback and without.

The sweep: 8 runs in chunks of 4 (each chunk sharded over the tests' two CPU devices), 120
steps recorded every 2nd step, so 60 blocks; with at least 20 reports per chunk the program
reports every 3rd block, i.e. after 6, 12, ..., 120 steps: 20 reports per chunk and device.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import jax
import numpy as np
import pytest
import tqdm.auto
from reference import make_spec, small_dataset

import gradlab as gl
from gradlab.engine import progress
from gradlab.errors import ConfigError

STEPS, LOG_EVERY, CHUNK, RUNS = 120, 2, 4, 8
REPORTED = [6 * k for k in range(1, 21)]  # steps done at each report (every 3rd block of 2)


class FakeTqdm:
    """Records what gl.run shows: descriptions and the bar's position after each update."""

    instances: ClassVar[list[FakeTqdm]] = []

    def __init__(self, total: int, **kwargs) -> None:
        self.total, self.n, self.events = total, 0, []
        self.lock = threading.Lock()
        FakeTqdm.instances.append(self)

    def update(self, n: int) -> None:
        with self.lock:
            self.n += n
            self.events.append(("at", self.n))

    def set_description(self, text: str) -> None:
        with self.lock:
            self.events.append(("text", text))

    def unpause(self) -> None:
        pass

    def close(self) -> None:
        pass

    def positions(self) -> list[int]:
        return [v for kind, v in self.events if kind == "at"]


class Recorder:
    """A sink for the program's reports: every (steps done, steps) it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def steps_done(self, done: int, steps: int) -> None:
        with self.lock:
            self.calls.append((done, steps))


@pytest.fixture(scope="module")
def spec():
    grid = {"seed": [0, 1, 2, 3], "learning_rate": [1e-2, 3e-2]}
    return make_spec(small_dataset(), grid=grid, steps=STEPS, log_every=LOG_EVERY)


def observed_run(spec, mode, monkeypatch):
    """``gl.run`` with a fake bar and a recorder: the Dataset, the bar, the reports."""
    FakeTqdm.instances.clear()
    monkeypatch.setattr(tqdm.auto, "tqdm", FakeTqdm)
    recorder = Recorder()
    with progress.reporting(recorder):
        ds = gl.run(spec, chunk_size=CHUNK, progress=mode)
    return ds, (FakeTqdm.instances[0] if FakeTqdm.instances else None), recorder.calls


@pytest.fixture(scope="module")
def runs(spec):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {mode: observed_run(spec, mode, monkeypatch) for mode in ("steps", False, True)}


def test_bar_moves_within_each_chunk(runs):
    _, bar, _ = runs["steps"]
    # A chunk of 4 runs after d of 120 steps counts floor(4 d / 120) runs; the second chunk
    # starts where the first ended. The old bar moved only to 4, then 8.
    first = sorted({CHUNK * d // STEPS for d in REPORTED} - {0})
    expected = first + [CHUNK + k for k in first]
    assert bar.total == RUNS
    assert bar.positions() == expected
    assert len([p for p in bar.positions() if p < CHUNK]) >= 2  # within the first chunk


def test_compilation_is_its_own_phase(runs):
    _, bar, _ = runs["steps"]
    texts = [v for kind, v in bar.events if kind == "text"]
    first_move = next(i for i, (kind, _) in enumerate(bar.events) if kind == "at")
    compiling = [i for i, (kind, v) in enumerate(bar.events) if str(v).startswith("compiling ")]
    assert compiling and compiling[0] < first_move
    assert texts[0].startswith("compiling adam (") and texts[0].endswith(" s)")
    assert texts[-1] == "adam"  # training, after compilation


def test_one_report_per_block_and_device_not_per_run(runs):
    _, _, calls = runs["steps"]
    devices = len(jax.local_devices())
    # Two chunks, each reporting 20 times on each device; per run it would be 4x as many.
    assert len(calls) == 2 * devices * len(REPORTED)
    assert sorted(calls) == sorted((d, STEPS) for d in REPORTED for _ in range(2 * devices))


def test_no_callback_without_progress(runs):
    for mode in (False, True):
        assert runs[mode][2] == [], mode
    assert runs[False][1] is None  # no bar at all
    assert runs[True][1].positions() == [CHUNK, RUNS]  # the default bar moves per chunk


def test_numbers_identical_with_progress_on_and_off(runs):
    on, off = runs["steps"][0], runs[False][0]  # two programs: with and without the callback
    assert set(on.data_vars) == set(off.data_vars)
    for name in off.data_vars:
        assert np.array_equal(on[name].values, off[name].values, equal_nan=True), name


def test_bad_mode_fails_before_anything_is_written(spec, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="progress"):
        gl.run(spec, out=str(out), progress="yes")
    assert not out.exists()


@pytest.mark.parametrize("blocks", [20, 21, 39, 40, 41, 125, 1250, 4999, 100_000])
def test_twenty_to_forty_reports_per_chunk(blocks):
    every = progress.report_every(blocks)
    assert 20 <= blocks // every < 40


@pytest.mark.parametrize("blocks", [1, 7, 19, 39])
def test_few_blocks_report_each_block(blocks):
    assert progress.report_every(blocks) == 1
