"""Test configuration.

The CPU is exposed as two XLA devices, so every sweep in the tests runs sharded over two
devices (test_scale_out.py checks the results equal one device's). Rank promotion raises, so
silent broadcasting of mismatched ranks is a bug, not a habit. Dtype
promotion stays "standard": optax's own Adam bias correction (``b1 ** count``, a float to an
int32 power) is rejected by the "strict" mode.
"""

import os

import jax
import pytest

# The tests' networks are tiny, so compiling dominates their time: skip XLA's backend
# optimisations for the jitted code of the tests (reference loops, dense Hessians, theory).
# gl.run's programs pass their own compile options (engine.platform.CPU_COMPILER_OPTIONS), which
# take precedence, so every sweep is compiled as users compile it. Subprocesses (CLI tests)
# inherit the setting.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
).strip()

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_num_cpu_devices", 2)


@pytest.fixture(autouse=True)
def _isolated_data_cache(tmp_path_factory, monkeypatch):
    """Data caches go to one temporary directory per test session, never the user's home."""
    monkeypatch.setenv("GRADLAB_DATA", str(tmp_path_factory.getbasetemp() / "gradlab-data"))
