"""Hand-built Datasets with a width axis, with answers known by construction.

Not a test module: tests/test_analysis_width.py and tests/test_plots_width.py import these.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

WIDTHS = [64, 128, 256, 512, 1024]
SEEDS = [0, 1, 2, 3]


def coord_dataset(exponents, noise=0.0):
    """act_rms_layer = c_l · n^{k_l} · (1 + noise) over (optimizer, seed, width, step, layer)."""
    rng = np.random.default_rng(0)
    k = np.asarray(exponents)[None, None, None, None, :]  # optimizer, seed, width, step, layer
    n = np.asarray(WIDTHS, float)[None, None, :, None, None]
    jitter = 1 + noise * rng.standard_normal((1, len(SEEDS), len(WIDTHS), 2, 1))
    rms = (2.0 + np.arange(len(exponents))) * n**k * jitter
    dims = ("optimizer", "seed", "width", "step", "layer")
    return xr.Dataset(
        {
            "act_rms_layer": (dims, rms),
            "diverged": (dims[:3], np.zeros((1, len(SEEDS), len(WIDTHS)), bool)),
            "diverged_at": (dims[:3], np.full((1, len(SEEDS), len(WIDTHS)), -1, np.int32)),
        },
        coords={
            "optimizer": ["adam"],
            "seed": SEEDS,
            "width": WIDTHS,
            "step": [0, 5],
            "layer": np.arange(len(exponents)),
        },
    )


LRS = 2.0 ** np.arange(-10, 1)  # 2^-10 ... 1


def transfer_dataset(alpha, eta0=2.0**-3, diverge_above=None):
    """final_loss = (log2 η − log2 η*(n))² + 0.01·seed, η*(n) = η0·(n/64)^α, on a 2^k grid."""
    n = np.asarray(WIDTHS, float)
    best = eta0 * (n / 64) ** alpha  # [width]
    loss = (np.log2(LRS)[None, :, None] - np.log2(best)[None, None, :]) ** 2
    loss = loss + 0.01 * np.asarray(SEEDS, float)[:, None, None]  # seed, lr, width
    loss = loss[None]
    diverged = np.zeros(loss.shape, bool)
    if diverge_above is not None:
        diverged[:, 1:, LRS > diverge_above, :] = True  # seeds 1-3 of every larger η
        loss = np.where(diverged, np.nan, loss)
    dims = ("optimizer", "seed", "learning_rate", "width")
    return xr.Dataset(
        {
            "final_loss": (dims, loss),
            "diverged": (dims, diverged),
            "diverged_at": (dims, np.where(diverged, 3, -1).astype(np.int32)),
        },
        coords={
            "optimizer": ["sgd"],
            "seed": SEEDS,
            "learning_rate": LRS,
            "width": WIDTHS,
            "step": [0],
        },
    )
