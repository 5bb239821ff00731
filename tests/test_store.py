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
    with pytest.warns(RuntimeWarning, match="unreadable"):  # the truncated one, recomputed
        resumed = gl.run(spec, out=str(out), progress=False)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    xr.testing.assert_identical(resumed.drop_attrs(), ds.drop_attrs())


def test_a_different_spec_is_refused_unless_overwrite(spec, tmp_path):
    # Chunks of 4 and learning rates changed, not the program: the module's programs serve.
    out = tmp_path / "run"
    gl.run(spec, out=str(out), chunk_size=4, progress=False)
    other = spec.replace(grid={"seed": [0, 1, 2], "learning_rate": [0.2, 50.0]})
    with pytest.raises(gl.ConfigError, match=r"^out: .* different sweep"):
        gl.run(other, out=str(out), chunk_size=4, progress=False)
    kept = gl.load(out)  # nothing already written was lost
    assert kept.learning_rate.values.tolist() == [0.1, 100.0] and kept.sizes["step"] == 6
    ds = gl.run(other, out=str(out), chunk_size=4, progress=False, overwrite=True)
    for result in (ds, gl.load(out)):
        assert result.learning_rate.values.tolist() == [0.2, 50.0]


def test_load_of_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a gradlab run directory"):
        gl.load(tmp_path)


@pytest.mark.parametrize("chunk_size", [2, 5, 6])
def test_assemble_places_every_chunk_by_group_run_and_step(chunk_size):
    # 2 optimizers x (3 seeds x 2 learning rates) runs, 4 logged steps, 2 layers. Each value
    # encodes where it belongs, 1000·group + 100·run + 10·step + layer, so a chunk copied to the
    # wrong group, offset or axis shows up as a wrong number.
    grid = {"learning_rate": [0.1, 0.2], "seed": [0, 1, 2]}  # traced order; the spec's below
    layout = gl.store.Layout(
        fingerprint="f",
        optimizers=["sgd", "adam"],
        static={},
        traced=grid,
        grid_order=["seed", "learning_rate"],
        steps=[0, 2, 4, 6],
        num_layers=2,
        num_runs=6,
        chunk_size=chunk_size,
    )
    code = lambda g, runs: (
        1000 * g + 100 * runs[:, None, None] + 10 * np.arange(4)[:, None] + np.arange(2)
    ).astype(np.float32)
    chunks = {}
    for g in range(2):
        for c in range(layout.group_chunks(g)):
            runs = np.arange(c * chunk_size, min((c + 1) * chunk_size, 6))
            chunks[(g, c)] = {
                "grad_norm_layer": code(g, runs),
                "final_loss": code(g, runs)[:, 0, 0],
            }
            for array in chunks[(g, c)].values():  # as jax.device_get returns them
                array.flags.writeable = False
    ds = gl.store.assemble(layout, chunks, "spec", {})
    assert all(ds[name].values.flags.writeable for name in ds.data_vars)  # a normal Dataset

    assert ds.grad_norm_layer.dims == ("optimizer", "seed", "learning_rate", "step", "layer")
    for g, name in enumerate(["sgd", "adam"]):
        for i, lr in enumerate(grid["learning_rate"]):
            for seed in grid["seed"]:
                run = i * 3 + seed  # C order of the traced axes
                want = 1000 * g + 100 * run + 10 * np.arange(4)[:, None] + np.arange(2)
                got = ds.sel(optimizer=name, learning_rate=lr, seed=seed)
                np.testing.assert_array_equal(got.grad_norm_layer.values, want)
                assert got.final_loss.item() == 1000 * g + 100 * run
    np.testing.assert_array_equal(ds.step, [0, 2, 4, 6])


def test_a_resumed_sweep_reports_the_time_of_every_session(spec, tmp_path):
    import json

    out = tmp_path / "run"
    first = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    chunks = sorted((out / "chunks").glob("*.nc"))
    assert first.attrs["sessions"] == 1 and len(chunks) == 4
    chunks[-1].unlink()  # as if the first session had been killed before its last chunk
    (out / "result.nc").unlink()
    second = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    sessions = json.loads(second.attrs["session_times"])
    assert second.attrs["sessions"] == 2 and [s["chunks"] for s in sessions] == [4, 1]
    for key in ("wall_time_s", "compile_time_s", "run_time_s"):
        assert second.attrs[key] == pytest.approx(sum(s[key] for s in sessions))
    assert second.attrs["wall_time_s"] >= sessions[0]["wall_time_s"] > 0
    assert second.attrs["run_time_s"] > 0


def test_a_run_directory_from_before_the_layer_coordinates_is_resumed(spec, tmp_path):
    import json

    out = tmp_path / "run"
    ds = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("stability_rules", "layer_widths", "layer_sizes"):  # an older gradlab's manifest
        del manifest[key]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "result.nc").unlink()
    again = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    assert again.attrs["sessions"] == 1  # nothing was computed again
    xr.testing.assert_identical(again.drop_attrs(), ds.drop_attrs())
    assert "layer_sizes" in json.loads((out / "manifest.json").read_text())


def _flip_bytes_inside_the_data(path):
    """Overwrite 40 bytes in the middle of the file's largest stretch of array data."""
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 40] = bytes(40 - b % 7 for b in raw[middle : middle + 40])
    path.write_bytes(bytes(raw))


def test_chunks_that_do_not_verify_are_recomputed_never_reused(spec, tmp_path):
    out = tmp_path / "run"
    ds = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    chunks = sorted((out / "chunks").glob("*.nc"))
    # 1. corrupted bytes inside a chunk's data
    _flip_bytes_inside_the_data(chunks[1])
    (out / "result.nc").unlink()
    with pytest.warns(RuntimeWarning, match=r"g000-c00001.nc: (its checksum|unreadable)"):
        again = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    xr.testing.assert_identical(again.drop_attrs(), ds.drop_attrs())
    # 2. another spec's chunks dropped in, with the manifest gone: nothing of it is adopted
    other = spec.replace(grid={"seed": [0, 1, 2], "learning_rate": [0.2, 50.0]})
    elsewhere = tmp_path / "other"
    gl.run(other, out=str(elsewhere), chunk_size=4, progress=False)
    for path in (elsewhere / "chunks").glob("*.nc"):
        (out / "chunks" / path.name).write_bytes(path.read_bytes())
    (out / "manifest.json").unlink()
    (out / "result.nc").unlink()
    with pytest.warns(RuntimeWarning, match="another sweep or chunking .fingerprint"):
        mixed = gl.run(spec, out=str(out), chunk_size=4, progress=False)
    xr.testing.assert_identical(mixed.drop_attrs(), ds.drop_attrs())
    # 3. the same spec cut into other chunks: its chunks are not this chunking's
    (out / "manifest.json").unlink()
    (out / "result.nc").unlink()
    with pytest.warns(RuntimeWarning, match="chunk_size"):  # 2 runs a chunk (conftest: 2 devices)
        recut = gl.run(spec, out=str(out), chunk_size=2, progress=False)
    for name in ("loss", "grad_norm", "final_loss", "diverged_at"):
        np.testing.assert_allclose(recut[name], ds[name], rtol=1e-5, err_msg=name)
