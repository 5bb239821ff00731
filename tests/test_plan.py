"""The plan: steps, groups and chunking, checked through the sweeps they produce."""

from __future__ import annotations

import numpy as np
import optax
import pytest
from reference import (
    N_TRAIN,
    make_spec,
    reference_loss,
    reference_params,
    reference_train,
    small_dataset,
)

import gradlab as gl


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


def test_full_batch_and_epochs(dataset):
    spec = make_spec(
        dataset, optimizers=("sgd",), grid={"learning_rate": [0.1]}, steps=None, epochs=2
    )
    ds = gl.run(spec, progress=False)
    assert ds.sizes["step"] == 2 * (N_TRAIN // 16)
    full = gl.run(spec.replace(epochs=3, batch_size=None), progress=False)
    assert ds.loss.dims == ("optimizer", "learning_rate", "step")
    assert full.sizes["step"] == 3
    params = reference_params(spec, 0)
    np.testing.assert_allclose(
        full.loss.isel(step=0).squeeze(),
        reference_loss(params, dataset.x_train, dataset.y_train),
        rtol=1e-5,
    )


@pytest.mark.slow  # four programs
def test_static_axes_are_groups(dataset):
    spec = make_spec(
        dataset,
        optimizers=("sgd", "momentum"),
        grid={"activation": ["relu", "tanh"], "learning_rate": [0.01], "seed": [0]},
    )
    ds = gl.run(spec, progress=False)
    assert ds.loss.dims == ("optimizer", "activation", "learning_rate", "seed", "step")
    tanh = ds.sel(optimizer="sgd", activation="tanh", learning_rate=0.01, seed=0)
    losses, _, _ = reference_train(spec, dataset, optax.sgd(0.01), 0)
    np.testing.assert_allclose(tanh.loss, losses, rtol=1e-5)
    relu = ds.sel(optimizer="sgd", activation="relu", seed=0).loss.values
    assert not np.allclose(relu, tanh.loss.values)


def test_results_do_not_depend_on_chunk_size(dataset):
    spec = make_spec(dataset, grid={"seed": [0, 1, 2], "learning_rate": [1e-2, 3e-2]})
    whole = gl.run(spec, progress=False)
    for chunk_size in (1, 4):
        chunked = gl.run(spec, chunk_size=chunk_size, progress=False)
        for name in ("loss", "grad_norm", "update_norm", "delta_rms_layer", "final_loss"):
            np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-5, err_msg=name)


def test_a_grid_whose_result_cannot_fit_in_memory_is_refused_up_front(dataset):
    # 10⁸ runs: refused by the estimate (naming the size), before any compilation.
    grid = {"seed": list(range(10_000)), "learning_rate": list(np.geomspace(1e-4, 1, 10_000))}
    spec = make_spec(dataset, optimizers=("sgd",), grid=grid)
    with pytest.raises(gl.ConfigError, match=r"grid: the result Dataset would need [\d.]+ GiB"):
        gl.make_plan(spec, dataset)


@pytest.mark.slow  # two programs with sharpness
def test_the_result_size_estimate_is_the_datasets_size(dataset):
    spec = make_spec(dataset, optimizers=("sgd", "adam"), metrics=("default", "sharpness"))
    ds = gl.run(spec, progress=False)
    runs = ds.sizes["optimizer"] * ds.sizes["seed"] * ds.sizes["learning_rate"]
    estimate = gl.engine.plan.result_bytes(spec, runs, ds.sizes["step"], ds.sizes["layer"])
    assert estimate == sum(ds[v].nbytes for v in ds.data_vars)
