"""A run directory never mixes numbers computed by two versions of gradlab or its libraries."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

import gradlab as gl
from gradlab import assembly


@pytest.fixture
def spec():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 3)).astype(np.float32)
    data = gl.data.from_arrays(x, x[:, :1], x[:8], x[:8, :1])
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0, 1], "learning_rate": [0.01, 0.1, 0.3, 1.0]},
        steps=4,
        batch_size=None,
    )


def test_the_code_versions_name_each_library():
    line = assembly.code_version()
    for name in ("gradlab", "jax", "jaxlib", "flax", "optax"):
        assert f"{name} " in line


def test_a_sweep_resumed_under_other_versions_recomputes_their_chunks(spec, tmp_path, monkeypatch):
    out = tmp_path / "run"
    first = gl.run(spec, out=out, chunk_size=2, progress=False)
    chunks = sorted((out / "chunks").glob("*.nc"))
    assert len(chunks) == 4
    with xr.open_dataset(chunks[0], engine="h5netcdf") as c:
        assert c.attrs["code"] == assembly.code_version()
    monkeypatch.setattr(assembly, "code_version", lambda: "gradlab 9.9, jax 9.9")
    # what the old versions finished is still there to read
    xr.testing.assert_identical(gl.load(out), first)
    # run again: every chunk is recomputed (one warning), result.nc rewritten under the new code
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = gl.run(spec, out=out, chunk_size=2, progress=False)
    said = [str(w.message) for w in caught if "other versions" in str(w.message)]
    assert len(said) == 1 and "gradlab 9.9" in said[0]
    for name in ("loss", "diverged_at", "final_loss"):
        np.testing.assert_array_equal(again[name].values, first[name].values)
    assert json.loads((out / "result.sha256").read_text())["code"] == "gradlab 9.9, jax 9.9"
    for path in sorted((out / "chunks").glob("*.nc")):
        with xr.open_dataset(path, engine="h5netcdf") as c:
            assert c.attrs["code"] == "gradlab 9.9, jax 9.9"


def test_an_unfinished_directory_of_other_versions_is_not_assembled(spec, tmp_path, monkeypatch):
    out = tmp_path / "run"
    gl.run(spec, out=out, chunk_size=2, progress=False)
    (out / "result.nc").unlink()  # as if interrupted before the last step
    monkeypatch.setattr(assembly, "code_version", lambda: "gradlab 9.9, jax 9.9")
    with pytest.raises(ValueError, match="other versions"):
        gl.load(out)
