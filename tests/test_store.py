"""Run directories: persistence, resuming, refusing a different sweep, corrupt chunks."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gradlab as gl


@pytest.fixture(scope="module")
def spec():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    data = gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:])
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=data,
        optimizers=("sgd", "clip_by_global_norm|sgd"),
        grid={"seed": [0, 1, 2], "learning_rate": [0.1, 100.0]},
        steps=6,
        batch_size=8,
    )


def test_run_dir_round_trip_and_resume(spec, tmp_path):
    out = tmp_path / "run"
    ds = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    assert (out / "spec.toml").read_text() == gl.to_toml(spec)
    loaded = gl.load(out)
    xr.testing.assert_identical(loaded.drop_attrs(), ds.drop_attrs())
    assert loaded.attrs["spec"] == ds.attrs["spec"]
    assert loaded.diverged.dtype == bool and loaded.clipped.dtype == bool

    # Lose one chunk (as if killed before it was written) and corrupt another: resuming
    # recomputes exactly those two and gives the same Dataset as the uninterrupted run.
    chunks = sorted((out / "chunks").glob("*.nc"))
    assert len(chunks) == 2 * 2  # 2 groups x ceil(6 / 4) chunks
    kept = {p: p.stat().st_mtime_ns for p in chunks[1:3]}
    chunks[0].unlink()
    chunks[3].write_bytes(chunks[3].read_bytes()[:100])
    (out / "result.nc").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        gl.load(out)
    resumed = gl.run(spec, out=str(out), progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    xr.testing.assert_identical(resumed.drop_attrs(), ds.drop_attrs())


def test_a_different_spec_is_refused_unless_overwrite(spec, tmp_path):
    out = tmp_path / "run"
    gl.run(spec, out=str(out), progress=False)
    other = spec.replace(steps=7)
    with pytest.raises(gl.ConfigError, match=r"^out: .* different sweep"):
        gl.run(other, out=str(out), progress=False)
    assert gl.load(out).sizes["step"] == 6  # nothing already written was lost
    ds = gl.run(other, out=str(out), progress=False, overwrite=True)
    assert ds.sizes["step"] == 7 and gl.load(out).sizes["step"] == 7


def test_load_of_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a gradlab run directory"):
        gl.load(tmp_path)
