"""The training losses against their formulas."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from reference import (
    CLASSES,
    N_TRAIN,
    make_spec,
    reference_batches,
    reference_forward,
    reference_params,
    small_dataset,
)

import gradlab as gl


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_mse_loss_is_half_squared_error_on_one_hot(dataset):
    spec = make_spec(
        dataset, optimizers=("sgd",), grid={"seed": [0], "learning_rate": [1e-9]}, loss="mse"
    )
    ds = gl.run(spec, progress=False).sel(optimizer="sgd", seed=0, learning_rate=1e-9)
    params = reference_params(spec, 0)
    idx = reference_batches(N_TRAIN, 16, 1)[0]
    logits, _ = reference_forward(params, dataset.x_train[idx], jnp.tanh)
    onehot = np.eye(CLASSES)[dataset.y_train[idx]]
    expected = np.mean(0.5 * np.sum((np.asarray(logits) - onehot) ** 2, axis=1))
    np.testing.assert_allclose(ds.loss.isel(step=0), expected, rtol=1e-5)
