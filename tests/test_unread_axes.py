"""A chain trains each distinct configuration once; unfinished sweeps load with a mask.

A grid axis a chain does not read (plain ``sgd`` and ``clip_norm``) is trained at its first
value only and copied along the axis; the Dataset says which chain reads which axis
(``reads_<axis>`` coordinates). ``gl.load(dir, partial=True)`` returns the finished runs of an
interrupted sweep with a ``finished`` mask.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

import gradlab as gl

CLIP = "clip_by_global_norm|sgd"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:])


def _spec(data, grid, optimizers=("sgd", CLIP)):
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=data,
        optimizers=optimizers,
        grid=grid,
        steps=5,
        batch_size=8,
    )


GRID = {"seed": [0, 1], "clip_norm": [0.05, 0.5, 5.0], "learning_rate": [0.1, 300.0]}


@pytest.fixture(scope="module")
def swept(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("unread") / "run"
    ds = gl.run(_spec(data, GRID), out=str(out), chunk_size=2, progress=False)
    return ds, out


def test_the_dataset_says_which_chain_reads_which_axis(swept):
    ds, _ = swept
    assert ds["reads_clip_norm"].values.tolist() == [False, True]
    assert ds["reads_learning_rate"].values.tolist() == [True, True]
    assert "reads_seed" not in ds.coords  # model axes are read by every chain


def test_a_chain_trains_an_axis_it_does_not_read_once(swept):
    _, out = swept
    # sgd: 2 seeds x 2 learning rates = 4 runs, 2 chunks of 2; the clipped chain 12 runs, 6.
    chunks = sorted(p.name for p in (out / "chunks").glob("*.nc"))
    assert sum(n.startswith("g000-") for n in chunks) == 2
    assert sum(n.startswith("g001-") for n in chunks) == 6
    layout = gl.store.RunDir.stored_layout(out)
    assert [layout.group_runs(g) for g in range(2)] == [4, 12]


def test_copies_along_an_unread_axis_are_the_chains_own_runs(swept, data):
    ds, _ = swept
    sgd = ds.sel(optimizer="sgd")
    for v in ("final_loss", "grad_norm", "diverged_at"):
        for c in GRID["clip_norm"]:
            np.testing.assert_array_equal(
                sgd[v].sel(clip_norm=c).values, sgd[v].isel(clip_norm=0).values
            )
    # ... and equal a sweep of sgd alone without the axis (the same chunk size).
    alone = gl.run(
        _spec(data, {k: v for k, v in GRID.items() if k != "clip_norm"}, ("sgd",)),
        chunk_size=2,
        progress=False,
    ).sel(optimizer="sgd")
    for v in ("final_loss", "loss", "grad_norm_layer", "test_accuracy"):
        np.testing.assert_array_equal(sgd[v].isel(clip_norm=0).values, alone[v].values)
    # The clipped chain reads clip_norm: its runs differ along it.
    clipped = ds["grad_norm"].sel(optimizer=CLIP).isel(step=-1)
    assert not np.allclose(clipped.isel(clip_norm=0), clipped.isel(clip_norm=2), equal_nan=True)


def test_resume_accepts_a_manifest_written_before_the_read_flags(data, tmp_path):
    """A run directory whose chains read every axis resumes although its manifest predates
    the ``reads`` field (the layouts cut the same chunks)."""
    spec = _spec(data, {"seed": [0, 1], "learning_rate": [0.1, 1.0]})
    out = tmp_path / "run"
    ds = gl.run(spec, out=str(out), progress=False)
    manifest = out / "manifest.json"
    table = json.loads(manifest.read_text())
    del table["reads"]
    manifest.write_text(json.dumps(table))
    (out / "result.nc").unlink()
    again = gl.run(spec, out=str(out), progress=False)
    xr.testing.assert_identical(again.drop_attrs(), ds.drop_attrs())


def test_partial_load_marks_what_has_not_finished(swept, tmp_path):
    ds, out = swept
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "result.nc").unlink()
    (copy / "chunks" / "g000-c00001.nc").unlink()  # sgd, seed 1 (both learning rates)
    (copy / "chunks" / "g001-c00000.nc").unlink()  # clipped, seed 0, clip_norm 0.05
    with pytest.raises(ValueError, match=r"partial=True"):
        gl.load(copy)
    part = gl.load(copy, partial=True)
    expected = xr.ones_like(ds["diverged"], dtype=bool)
    expected.loc[{"optimizer": "sgd", "seed": 1}] = False
    expected.loc[{"optimizer": CLIP, "seed": 0, "clip_norm": 0.05}] = False
    xr.testing.assert_equal(part["finished"], expected)
    # Trained runs: sgd 4 (one chunk of 2 missing), the clipped chain 12 (one of 2 missing).
    assert (part.attrs["finished_runs"], part.attrs["total_runs"]) == (16 - 4, 16)
    done = part["finished"]
    for v in ("final_loss", "grad_norm_layer", "diverged", "diverged_at"):
        xr.testing.assert_equal(part[v].where(done), ds[v].where(done))
    assert part["final_loss"].where(~done).isnull().all()
    assert (part["diverged_at"].where(~done, -1) == -1).all()
    assert not part["diverged"].where(~done, False).any()
    xr.testing.assert_identical(gl.load(out, partial=True), gl.load(out))  # complete: no mask


def test_partial_load_of_a_sweep_with_no_finished_chunk_says_so(swept, tmp_path):
    _, out = swept
    copy = tmp_path / "empty"
    copy.mkdir()
    for name in ("manifest.json", "spec.toml"):
        (copy / name).write_bytes((out / name).read_bytes())
    with pytest.raises(ValueError, match="no finished chunk"):
        gl.load(copy, partial=True)


def test_figures_count_runs_as_the_analysis_does(swept, tmp_path):
    """A phase diagram of a partial sweep shows the finished runs' divergence rate (not the
    unfinished ones as survivors), and subtitles count a chain's copies once."""
    import matplotlib

    matplotlib.use("Agg")
    ds, out = swept
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "result.nc").unlink()
    (copy / "chunks" / "g000-c00001.nc").unlink()  # sgd, seed 1
    part = gl.load(copy, partial=True)
    fig = gl.plots.phase_diagram(part, "learning_rate", "clip_norm", sel={"optimizer": "sgd"})
    cells = fig.axes[0].collections[0].get_array().filled(np.nan).reshape(3, 2)
    seed0 = ds["diverged"].sel(optimizer="sgd", seed=0).astype(float)
    assert seed0.sel(learning_rate=300.0).all()  # the unfinished seed 1 must not halve this
    np.testing.assert_array_equal(cells, seed0.transpose("clip_norm", "learning_rate").values)
    note = gl.plots.reading.pool_note(ds.sel(learning_rate=300.0), ["seed", "clip_norm"])
    assert note.endswith("2–6 runs per point (seed × clip_norm)")  # sgd: 2 distinct, clipped: 6
