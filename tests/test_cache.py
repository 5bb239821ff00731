"""The compiled-program cache: reuse across traced values, a new program for new code."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from reference import CLASSES, make_spec, small_dataset

import gradlab as gl


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_a_redefined_module_with_the_same_repr_gets_its_own_program(dataset):
    # In a notebook a re-run cell defines a new class with the old repr ("Shifted()"); the
    # cached program of the old class must not be reused. Reference: the same sweep run
    # with an empty program cache.
    import flax.linen as nn

    def define(shift):
        class Shifted(nn.Module):
            @nn.compact
            def __call__(self, x):
                return nn.Dense(CLASSES, name="dense_0")(x) + shift * jnp.arange(CLASSES)[None]

        return Shifted()

    grid = {"seed": [0], "learning_rate": [0.1]}
    specs = [make_spec(dataset, optimizers=("sgd",), grid=grid, model=define(s)) for s in (0, 3)]
    assert gl.to_toml(specs[0]) == gl.to_toml(specs[1])
    first = gl.run(specs[0], progress=False)
    second = gl.run(specs[1], progress=False)
    assert not np.allclose(first.loss, second.loss)  # the two classes train differently
    gl.engine.cache.clear()
    alone = gl.run(specs[1], progress=False)
    np.testing.assert_array_equal(second.loss, alone.loss)
    assert second.attrs["compile_time_s"] > 0
    # The same module object again (and a new instance of the same class) reuses the program.
    assert gl.run(specs[1], progress=False).attrs["compile_time_s"] == 0
    assert (
        gl.run(specs[1].replace(model=type(specs[1].model)()), progress=False).attrs[
            "compile_time_s"
        ]
        == 0
    )


def test_changing_traced_values_does_not_recompile(dataset):
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *a, **k: (
            compiles.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    gl.run(make_spec(dataset, grid={"seed": [0, 1], "learning_rate": [1e-3, 1e-2]}), progress=False)
    before = len(compiles)
    ds = gl.run(
        make_spec(dataset, grid={"seed": [5, 6], "learning_rate": [0.5, 0.05]}), progress=False
    )
    assert len(compiles) == before
    assert ds.attrs["compile_time_s"] == 0.0
    assert list(ds.seed.values) == [5, 6]


def test_a_program_is_compiled_for_its_devices(dataset):
    # conftest exposes two CPU devices: the same sweep on one of them needs its own program.
    spec = make_spec(dataset, grid={"seed": [0, 1], "learning_rate": [0.02]})
    both = gl.run(spec, progress=False)
    one = gl.run(spec, progress=False, devices=jax.devices()[:1])
    assert both.attrs["devices"] == 2 and one.attrs["devices"] == 1
    assert one.attrs["compile_time_s"] > 0
    assert gl.run(spec, progress=False, devices=jax.devices()[:1]).attrs["compile_time_s"] == 0
    np.testing.assert_allclose(one.loss, both.loss, rtol=1e-5)


_SWEEP = """
import jax, gradlab as gl
spec = gl.SweepSpec(model=gl.ModelSpec(hidden=(4,)), grid={"seed": [0]}, steps=2,
                    data=gl.DataSpec(name="digits", n_train=64, n_test=16), batch_size=16)
gl.run(spec, progress=False)
print("cache:", jax.config.jax_compilation_cache_dir)
"""


def _sweep_in_a_new_process(tmp_path, **env):
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k != "GRADLAB_COMPILE_CACHE"}
    base |= {
        "GRADLAB_DATA": str(tmp_path / "data"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", _SWEEP], env=base | env, capture_output=True, text=True, check=True
    )
    return done.stdout.split("cache:")[1].split()[0]


def _entries(path):
    return sorted(p.name for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.mark.slow
def test_the_persistent_compilation_cache_is_on_by_default_movable_and_optional(tmp_path):
    default = tmp_path / "data" / "jax-cache"
    assert _sweep_in_a_new_process(tmp_path) == str(default)
    assert _entries(default)  # the compiled program is on disk for the next process
    moved = tmp_path / "moved"
    assert _sweep_in_a_new_process(tmp_path, GRADLAB_COMPILE_CACHE=str(moved)) == str(moved)
    assert _entries(moved)
    before = _entries(default)
    assert _sweep_in_a_new_process(tmp_path, GRADLAB_COMPILE_CACHE="off") == "None"
    assert _entries(default) == before
    # A cache the user configured is never overridden.
    user = tmp_path / "user"
    env = {"JAX_COMPILATION_CACHE_DIR": str(user), "GRADLAB_COMPILE_CACHE": str(moved)}
    assert _sweep_in_a_new_process(tmp_path, **env) == str(user)
    assert _entries(user)
