"""``save_params``: every run's final parameters beside its chunks, read back one run at a time."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlab as gl

CLIP = "clip_by_global_norm|sgd"


@pytest.fixture(scope="module")
def spec():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return gl.SweepSpec(
        model=gl.ModelSpec(hidden=(5,)),
        data=gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:]),
        optimizers=("sgd", CLIP),
        grid={"seed": [0, 1], "clip_norm": [0.1, 1.0], "learning_rate": [0.3, 300.0]},
        steps=6,
        batch_size=16,
    )


@pytest.fixture(scope="module")
def saved(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "run"
    ds = gl.run(spec, out=str(out), chunk_size=3, save_params=True, progress=False)
    return ds, out


def _loss(module, params, data):
    logits = module.apply({"params": params}, data.x_train)
    return float(-jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(64), data.y_train]))


@pytest.mark.parametrize("chain", ["sgd", CLIP])
def test_saved_parameters_are_each_runs_own(spec, saved, chain):
    """Every run's saved θ_T gives that run's recorded final training loss (the loss written out
    here on the saved parameters); one run, in the group's last chunk, is also trained again
    alone (``gl.replay``, one compilation each) and its θ_T compared leaf by leaf."""
    ds, out = saved
    module = gl.models.make_model(spec.model, 2)
    for seed in (0, 1):
        for clip_norm in (0.1, 1.0):
            at = {"optimizer": chain, "seed": seed, "clip_norm": clip_norm, "learning_rate": 0.3}
            loss = _loss(module, gl.load_params(out, **at), spec.data)
            np.testing.assert_allclose(loss, float(ds["final_loss"].sel(at)), rtol=1e-5)
    at = {"optimizer": chain, "seed": 1, "clip_norm": 1.0, "learning_rate": 0.3}
    replayed = gl.replay(ds, spec=spec, **at)  # the same run trained alone
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    jax.tree.map(close, gl.load_params(out, **at), replayed.final_params)


def test_a_diverged_runs_parameters_are_finite(saved):
    ds, out = saved
    at = {"optimizer": "sgd", "seed": 0, "clip_norm": 0.1, "learning_rate": 300.0}
    assert bool(ds["diverged"].sel(at))
    assert all(np.isfinite(a).all() for a in jax.tree.leaves(gl.load_params(out, **at)))


def test_missing_parameters_are_computed_again_and_nothing_else(spec, saved, tmp_path):
    import shutil

    _, out = saved
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lost = copy / "params" / "g001-c00001.nc"
    lost.unlink()
    chunks = {p: p.stat().st_mtime_ns for p in (copy / "chunks").glob("*.nc")}
    result = (copy / "result.nc").stat().st_mtime_ns
    gl.run(spec, out=str(copy), save_params=True, progress=False)
    assert lost.exists()
    assert {p: p.stat().st_mtime_ns for p in chunks} == chunks  # no chunk rewritten
    assert (copy / "result.nc").stat().st_mtime_ns == result  # the finished result kept
    at = {"optimizer": CLIP, "seed": 0, "clip_norm": 1.0, "learning_rate": 0.3}  # run 3: chunk 1
    jax.tree.map(
        np.testing.assert_array_equal, gl.load_params(copy, **at), gl.load_params(out, **at)
    )


def test_bad_requests_are_refused(spec, saved, tmp_path):
    _, out = saved
    with pytest.raises(gl.ConfigError, match=r"^save_params: .*give out="):
        gl.run(spec, save_params=True, progress=False)
    with pytest.raises(gl.ConfigError, match=r"^learning_rate: the selection names 2 runs"):
        gl.load_params(out, optimizer="sgd", seed=0, clip_norm=0.1)
    unsaved = tmp_path / "unsaved"
    gl.run(spec.replace(optimizers=(CLIP,), steps=2), out=str(unsaved), progress=False)
    with pytest.raises(FileNotFoundError, match="--save-params"):
        gl.load_params(unsaved, optimizer=CLIP, seed=0, clip_norm=0.1, learning_rate=0.3)


def test_a_plain_sweep_before_it_does_not_lose_the_parameters(spec, tmp_path):
    # the same sweep without save_params first, in this process: its compiled program (which
    # returns no θ_T) must not be reused for the sweep that saves them
    grid = {"seed": [0, 1], "learning_rate": [0.3, 300.0]}
    one = spec.replace(optimizers=("sgd",), grid=grid, steps=5)
    gl.run(one, out=str(tmp_path / "plain"), progress=False)
    ds = gl.run(one, out=str(tmp_path / "kept"), save_params=True, progress=False)
    at = {"optimizer": "sgd", "seed": 1, "learning_rate": 0.3}
    params = gl.load_params(tmp_path / "kept", **at)  # failed: "run with --save-params"
    loss = _loss(gl.models.make_model(one.model, 2), params, one.data)  # θ_T is this run's
    np.testing.assert_allclose(loss, float(ds["final_loss"].sel(at)), rtol=1e-5)
