"""The catapult phase of Lewkowycz et al. (2020), reproduced on a wide two-layer network.

A 12-1024-1 ReLU network in the NTK parametrization (no biases), MSE on 64 teacher examples,
full-batch gradient descent at η = c/λ₀ (``lr_units = "sharpness"``, λ₀ each run's sharpness at
initialisation). The paper's picture: for c < 2 the loss falls monotonically; for 2 < c < c_max
it first rises (the *catapult*), the sharpness falls below 2/η and the run converges; above
c_max it diverges. Published: c_loss = 2 (the quadratic's bound), c_max ≈ 4 for their solvable
two-layer model and ≈ 12 for ReLU networks (their Fig. 1 and §3).

The phases and boundaries are recomputed here from the raw loss and sharpness with numpy
(independently of :func:`gradlab.analysis.catapult_phases`), then compared with the analysis.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import gradlab as gl

C_GRID = [1.0, 1.8, 2.2, 2.6, 3.0, 3.5, 4.0, 8.0]
PUBLISHED = {"c_loss": 2.0, "c_max (solvable model)": 4.0, "c_max (ReLU networks)": 12.0}


@pytest.fixture(scope="module")
def sweep():
    data = gl.data.load(
        "teacher", n_train=64, n_test=0, task="regression", input_dim=12, output_dim=1
    )
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(1024,), parametrization="ntk", init="normal", use_bias=False),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0, 1], "learning_rate": C_GRID},
        lr_units="sharpness",
        steps=200,
        batch_size=None,
        metrics=["none", "sharpness"],
        sharpness_every=10,
        divergence_factor=1e6,  # a catapult's loss peak is many times L0; 10 would cut it off
    )
    # one device: this sweep hangs when sharded over the two CPU devices of the tests
    return gl.run(spec, progress=False, devices=jax.devices()[:1]).sel(optimizer="sgd")


def _by_hand(ds):
    """Per seed and c: the loss rose above L0, the run converged (ended below L0), and the last
    recorded sharpness over 2/η; from the raw arrays."""
    loss = ds["loss"].transpose("seed", "learning_rate", "step").values.astype(float)
    diverged = ds["diverged"].transpose("seed", "learning_rate").values.astype(bool)
    with np.errstate(invalid="ignore"):
        rose = diverged | (np.nanmax(loss[..., 1:], axis=-1) > loss[..., :1].squeeze(-1))
    converged = ~diverged & (loss[..., -1] < loss[..., 0])
    lam0 = ds["initial_sharpness"].transpose("seed", "learning_rate").values.astype(float)
    eta = np.asarray(C_GRID)[None, :] / lam0
    lam = ds["sharpness"].transpose("seed", "learning_rate", "step").values.astype(float)
    last = np.array([[row[np.isfinite(row)][-1] for row in seed] for seed in lam])
    return rose, converged, last * eta / 2.0


def test_catapult_boundaries_match_the_paper(sweep):
    rose, converged, ratio = _by_hand(sweep)
    c = np.asarray(C_GRID)
    c_loss = np.array([c[r].min() for r in rose])
    c_max = np.array([c[k].max() for k in converged])
    print(f"\nmeasured c_loss per seed {c_loss}, c_max per seed {c_max}; published {PUBLISHED}")
    # c_loss within 2 ± 0.3 for every seed (the grid's nearest points are 1.8 and 2.2)
    assert np.all(np.abs(c_loss - PUBLISHED["c_loss"]) <= 0.3)
    # below c_loss the loss falls monotonically and the sharpness stays at λ₀ (ratio c/2)
    below = c < 2.0
    assert not rose[:, below].any() and converged[:, below].all()
    # the catapult runs: the loss rose, the run converged, and it ends with sharpness < 2/η
    catapult = rose & converged
    assert catapult.sum(axis=1).min() >= 3, catapult
    assert np.all(ratio[catapult] < 1.0), ratio
    # c_max is finite on this grid: the largest c's diverge
    assert sweep["diverged"].sel(learning_rate=8.0).all()
    assert np.all((c_max > 2.0) & (c_max < 8.0))

    phases = gl.analysis.catapult_phases(sweep)
    np.testing.assert_allclose(float(phases["c_loss"]), c_loss.mean())
    np.testing.assert_allclose(float(phases["c_max"]), c_max.mean())
    labels = phases["phase"].transpose("seed", "learning_rate").values
    np.testing.assert_array_equal(labels == "catapult", catapult)
    np.testing.assert_array_equal(labels == "monotone", converged & ~rose)
