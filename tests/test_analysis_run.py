"""compare_optimizers on a real gl.run sweep: a clip-norm axis that plain sgd does not read.

The expected numbers are computed with numpy from the Dataset's own arrays (the runs gl.run
trained), never by gradlab.analysis.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradlab as gl

CLIP = "clip_by_global_norm|sgd"


@pytest.fixture(scope="module")
def ds():
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
    return gl.run(spec, progress=False)


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
