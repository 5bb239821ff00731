"""compare_optimizers and the report on a real gl.run sweep: a clip-norm axis that plain sgd
does not read, and the same sweep interrupted.

The expected numbers are computed with numpy from the Dataset's own arrays (the runs gl.run
trained), never by gradlab.analysis.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import gradlab as gl
from gradlab import report

CLIP = "clip_by_global_norm|sgd"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    rng = np.random.default_rng(16)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:]),
        optimizers=("sgd", CLIP),
        grid={"seed": [0, 1, 2], "clip_norm": [1.0, 3.0], "learning_rate": [0.1, 30.0]},
        steps=6,
        batch_size=16,
    )
    out = tmp_path_factory.mktemp("analysis_run") / "run"
    gl.run(spec, out=str(out), chunk_size=3, progress=False)
    return out


@pytest.fixture(scope="module")
def ds(run_dir):
    return gl.load(run_dir)


def test_sgd_is_one_row_of_distinct_runs_and_the_clipped_chain_one_per_clip_norm(ds):
    df = gl.analysis.compare_optimizers(ds)
    assert list(df.index) == ["sgd", f"{CLIP} (clip_norm=1)", f"{CLIP} (clip_norm=3)"]
    lrs = ds["learning_rate"].values
    rows = {"sgd": ("sgd", 1.0), **{f"{CLIP} (clip_norm={c:g})": (CLIP, c) for c in (1.0, 3.0)}}
    for label, (chain, clip) in rows.items():
        run = ds.sel(optimizer=chain, clip_norm=clip)  # sgd: its one run per (seed, lr)
        div = run["diverged"].transpose("seed", "learning_rate").values
        assert df.loc[label, "runs"] == div.size == 6
        assert df.loc[label, "diverged"] == pytest.approx(div.mean())
        stable = ~div.any(axis=0)
        expected = lrs[stable].max() if stable.any() else np.nan
        np.testing.assert_equal(df.loc[label, "max_stable_lr"], expected)
        loss = run["final_loss"].transpose("seed", "learning_rate").values
        median = np.median(np.where(div, np.inf, loss), axis=0)
        if np.isfinite(median).any():
            assert df.loc[label, "best_lr"] == lrs[np.argmin(median)]
            assert df.loc[label, "best_final_loss"] == pytest.approx(median.min())
    # sgd's copies along clip_norm are the same runs
    sgd = ds["final_loss"].sel(optimizer="sgd")
    np.testing.assert_array_equal(sgd.sel(clip_norm=1.0), sgd.sel(clip_norm=3.0))


@pytest.mark.slow  # a report with figures: about 8 s
def test_the_report_of_an_interrupted_sweep_uses_its_finished_runs(run_dir, ds, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "result.nc").unlink()
    (copy / "chunks" / "g000-c00000.nc").unlink()  # sgd's first chunk of runs
    finished = gl.load(copy, partial=True)["finished"]
    sgd = int(finished.sel(optimizer="sgd", clip_norm=1.0).sum())  # its distinct runs
    clipped = int(finished.sel(optimizer=CLIP).sum())
    assert 0 < sgd < 6 and clipped == 12
    index = report.write_report(copy, tmp_path / "report", dpi=30)
    page = index.read_text(encoding="utf-8")
    assert f"partial: {sgd + clipped} of 18 runs finished" in page  # 18: 6 sgd + 2 x 6 clipped
    summary = (tmp_path / "report" / "summary.csv").read_text(encoding="utf-8")
    assert summary.splitlines()[1].split(",")[:2] == ["sgd", str(sgd)]
