"""Scale-out and reliability: devices, processes, SIGKILL, isolation, determinism, memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import xarray as xr

import gradlab as gl

CONFIG = """
steps = 40
batch_size = 16
optimizers = ["sgd", "clip_by_global_norm|adam"]
[model]
hidden = [16, 16]
[data]
name = "digits"
n_train = 320
n_test = 100
[grid]
seed = [0, 1, 2, 3]
learning_rate = { logspace = [-2, 1, 4] }
init_scale = [1.0]
"""


def identical(a: xr.Dataset, b: xr.Dataset) -> None:
    """Bit-identical: what the same chunk layout on the same machine gives."""
    assert a.sizes == b.sizes
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


def equal(a: xr.Dataset, b: xr.Dataset) -> None:
    """Equal to float32 rounding: what another chunk size or device split gives (the GEMMs
    over a chunk's runs are blocked differently), with flags and steps exactly equal."""
    assert a.sizes == b.sizes
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-8, err_msg=name)
        else:
            assert np.array_equal(x, y), name


@pytest.fixture(scope="module")
def spec():
    return gl.from_toml(CONFIG)


@pytest.fixture(scope="module")
def reference(spec):
    """The sweep on one device, in this process, in one chunk."""
    return gl.run(spec, progress=False, devices=jax.local_devices()[:1])


def test_two_devices_give_the_one_device_results(spec, reference):
    assert len(jax.local_devices()) == 2
    both = gl.run(spec, progress=False, chunk_size=6)
    assert both.attrs["devices"] == 2 and reference.attrs["devices"] == 1
    equal(both, reference)


def test_same_spec_twice_is_bit_identical(spec, reference):
    identical(gl.run(spec, progress=False, devices=jax.local_devices()[:1]), reference)


def test_nan_inside_the_forward_pass_leaves_the_chunk_untouched(spec):
    # init_scale 1e30 overflows the forward pass of one run to inf/NaN at step 0. Chunks of 6
    # runs on two devices, as in the test above: the programs compiled there are reused.
    wild = spec.replace(grid={**spec.grid, "init_scale": [1.0, 1e30]})
    calm = spec.replace(grid={**spec.grid, "init_scale": [1.0, 2.0]})
    a, b = gl.run(wild, progress=False, chunk_size=6), gl.run(calm, progress=False, chunk_size=6)
    assert bool(a.diverged.sel(init_scale=1e30).all())
    assert (a.diverged_at.sel(init_scale=1e30) == 0).all()
    identical(a.sel(init_scale=1.0), b.sel(init_scale=1.0))


def gradlab(*args, cwd, **popen):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", "gradlab", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_uninterrupted(spec, reference, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    args = [
        "run",
        str(config),
        "--out",
        str(out),
        "--chunk-size",
        "2",
        "--no-report",
        "--devices",
        "1",
    ]
    proc = gradlab(*args, cwd=tmp_path)
    chunks = out / "chunks"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if chunks.exists() and len(list(chunks.glob("*.nc"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(chunks.glob("*.nc")))
    assert 3 <= done < 2 * 8  # some chunks finished, not all
    # (a half-written temporary file may remain; it is never mistaken for a chunk)
    with pytest.raises(ValueError, match="incomplete"):
        gl.load(out)
    resumed = gradlab(*args, cwd=tmp_path)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    uninterrupted = gl.run(spec, progress=False, chunk_size=2, devices=jax.local_devices()[:1])
    identical(gl.load(out), uninterrupted)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_on_localhost_merge_into_one_run_dir(reference, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    port = free_port()
    procs = [
        gradlab(
            "run",
            str(config),
            "--out",
            str(out),
            "--chunk-size",
            "4",
            "--no-report",
            "--no-progress",
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            "2",
            "--process-id",
            str(i),
            cwd=tmp_path,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    assert "optimizer" in outputs[0][0]  # process 0 prints the comparison table
    merged = gl.load(out)
    assert merged.attrs["devices"] == 2
    equal(merged, reference)


def test_default_memory_budget_follows_the_device():
    """CPU: 2 GiB. GPU/TPU: half of what the devices' allocators may hand out, summed; a
    device that reports no limit falls back to the CPU budget."""

    class Device:
        def __init__(self, platform, limit=None):
            self.platform, self.limit = platform, limit

        def memory_stats(self):
            return None if self.limit is None else {"bytes_limit": self.limit, "bytes_in_use": 7}

    cpu_budget = 2 * 2**30
    assert gl.engine.default_memory_budget(jax.local_devices()) == cpu_budget
    gpus = [Device("gpu", 60 * 2**30), Device("gpu", 60 * 2**30)]
    assert gl.engine.default_memory_budget(gpus) == 60 * 2**30
    assert gl.engine.default_memory_budget([Device("tpu", 16 * 2**30)]) == 8 * 2**30
    assert gl.engine.default_memory_budget([Device("gpu")]) == cpu_budget


def test_memory_budget_picks_the_chunk_size(spec):
    data = gl.data.load(spec.data)
    big = spec.replace(grid={**spec.grid, "seed": list(range(1000))})
    roomy = gl.make_plan(big, data, num_devices=2)
    tight = gl.make_plan(big, data, memory_budget=2**20)
    assert roomy.chunk_size == 2 * gl.engine.platform.MAX_CHUNK  # the cap per device
    # On a GPU or TPU only the memory budget limits the chunk.
    gpu = gl.make_plan(big, data, platform="gpu")
    assert gpu.chunk_size == gpu.num_runs > 2 * gl.engine.platform.MAX_CHUNK
    assert 1 <= tight.chunk_size < 64
    # The Lanczos basis of the sharpness metric (20 vectors of the parameters) is counted.
    sharp = big.replace(metrics=("default", "sharpness"))
    assert gl.make_plan(sharp, data, memory_budget=2**20).chunk_size < tight.chunk_size
    with pytest.raises(gl.ConfigError, match=r"^memory_budget: one run needs"):
        gl.make_plan(big, data, memory_budget=1000)
