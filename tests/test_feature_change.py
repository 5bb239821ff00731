"""The ``feature_change`` metric set against a hand-written loop: each layer's pre-activation
change since initialisation, RMS of h^l(θ_t; x_t) − h^l(θ_0; x_t) on the step's batch."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from reference import (
    N_TRAIN,
    make_spec,
    reference_batches,
    reference_forward,
    reference_train,
    small_dataset,
)

import gradlab as gl


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_feature_change_equals_the_hand_computation(dataset):
    lr = 0.05
    spec = make_spec(
        dataset, grid={"seed": [0, 1], "learning_rate": [lr]}, steps=8,
        metrics=["default", "feature_change"],
    )  # fmt: skip
    ds = gl.run(spec, progress=False).sel(optimizer="adam").isel(learning_rate=0)
    assert ds["act_change_rms_layer"].dims == ("seed", "step", "layer")
    for seed in (0, 1):
        history: dict = {}
        reference_train(spec, dataset, optax.adam(lr), seed, history=history)
        theta0 = history["params"][0]
        batches = reference_batches(N_TRAIN, 16, spec.steps)
        for t, theta in enumerate(history["params"]):
            x = jnp.asarray(dataset.x_train[batches[t]])
            _, now = reference_forward(theta, x, jnp.tanh)
            _, then = reference_forward(theta0, x, jnp.tanh)
            want = [float(jnp.sqrt(jnp.mean((a - b) ** 2))) for a, b in zip(now, then, strict=True)]
            got = ds["act_change_rms_layer"].sel(seed=seed, step=t).values
            np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7, err_msg=f"step {t}")
    assert (ds["act_change_rms_layer"].isel(step=0) == 0).all()  # θ_0 itself
    assert (ds["act_change_rms_layer"].isel(step=-1) > 0).all()


@pytest.mark.slow  # two curvature sweeps: about 8 s
def test_feature_change_leaves_the_other_metrics_as_they_are(dataset):
    spec = make_spec(dataset, steps=6, metrics=["default", "sharpness"], sharpness_every=2)
    plain = gl.run(spec, progress=False)
    both = gl.run(spec.replace(metrics=["default", "sharpness", "feature_change"]), progress=False)
    for name in plain.data_vars:
        np.testing.assert_array_equal(both[name].values, plain[name].values, err_msg=name)
