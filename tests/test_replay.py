"""``gl.replay``: one run of a sweep trained again, alone, with its parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlab as gl


@pytest.fixture(scope="module")
def sweep():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    data = gl.data.from_arrays(x[:64], y[:64], x[64:], y[64:])
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(8,)),
        data=data,
        optimizers=("sgd", "adam"),
        grid={"seed": [0, 1], "learning_rate": [0.1, 200.0]},
        steps=12,
        batch_size=16,
        log_every=2,
    )
    return spec, gl.run(spec, chunk_size=1, progress=False)


VARIABLES = ("loss", "grad_norm", "grad_norm_layer", "update_norm", "diverged_at", "final_loss")


def test_replay_equals_the_sweep(sweep):
    spec, ds = sweep
    at = {"optimizer": "sgd", "seed": 1, "learning_rate": 200.0}
    r = gl.replay(ds, spec=spec, **at)
    want = ds.sel(at)
    got = r.ds.sel(at)
    for name in VARIABLES:  # chunks of one run in both: the same numbers
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    assert r.steps.tolist() == [0, 2, 4, 6, 8, 10]
    assert int(want["diverged_at"]) > 0  # the run that exploded (after some steps) ...
    leaves = jax.tree.leaves(r.params) + jax.tree.leaves(r.final_params)
    assert all(np.isfinite(a).all() for a in leaves)  # ... has finite weights before it did


def test_replayed_parameters_are_the_runs(sweep):
    spec, ds = sweep
    at = {"optimizer": "adam", "seed": 0, "learning_rate": 0.1}
    r = gl.replay(ds, spec=spec, **at, every=4)
    assert r.steps.tolist() == [0, 4, 8]
    assert not bool(ds["diverged"].sel(at))
    for name in VARIABLES:  # a run that trains to the end: the same numbers too
        np.testing.assert_array_equal(r.ds[name].sel(at).values, ds[name].sel(at).values, name)
    # θ_0 is the seed's draw (the initialiser, tested on its own in test_models.py)
    theta0 = gl.models.init_params(r.module, jax.random.PRNGKey(0), jnp.zeros((16, 6)), 1.0, None)
    first = jax.tree.map(lambda a: a[0], r.params)
    same = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # XLA's rounding
    jax.tree.map(same, first, jax.device_get(theta0))
    # θ after training gives the recorded final loss on the training set
    logits = r.module.apply({"params": r.final_params}, spec.data.x_train)
    loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(64), spec.data.y_train])
    want = float(ds["final_loss"].sel(at))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)


def test_replay_from_the_dataset_alone(tmp_path):
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=gl.DataSpec(name="digits", n_train=128, n_test=64),
        grid={"seed": [0, 1]},
        steps=4,
        batch_size=32,
    )
    ds = gl.run(spec, out=str(tmp_path / "run"), progress=False)
    r = gl.replay(gl.load(tmp_path / "run"), seed=1)  # the spec comes from the Dataset
    np.testing.assert_allclose(
        r.ds["loss"].values.ravel(), ds["loss"].sel(seed=1).values.ravel(), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("selection", "field"),
    [
        ({"optimizer": "sgd", "seed": 0}, "learning_rate"),  # two learning rates
        ({"optimizer": "sgd", "seed": 0, "learning_rate": 0.3}, "learning_rate"),  # not on it
        ({"optimizer": "sgd", "seed": 0, "learning_rate": 0.1, "momentum": 0.9}, "momentum"),
        ({"optimizer": "sgd", "seed": 0, "learning_rate": 0.1, "every": 3}, "every"),
        ({"optimizer": "sgd", "seed": 0, "learning_rate": 0.1, "every": 40}, "every"),
    ],
)
def test_a_selection_that_is_not_one_run_is_refused(sweep, selection, field):
    spec, ds = sweep
    with pytest.raises(gl.ConfigError, match=rf"^{field}"):
        gl.replay(ds, spec=spec, **selection)


def test_a_sweep_of_arrays_needs_its_spec(sweep):
    _, ds = sweep
    with pytest.raises(gl.ConfigError, match=r"^spec: .*pass its spec="):
        gl.replay(ds, optimizer="sgd", seed=0, learning_rate=0.1)
