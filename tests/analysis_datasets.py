"""Hand-built result Datasets for the gradlab.analysis tests, with answers known by construction.

Not a test module: the ``test_analysis_*.py`` files import these builders.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

STEPS = 5

# The edge-of-stability rule gl.run records for each chain used here (gradlab.optim's rule,
# written out by hand so the tests do not depend on it).
RULES = {"sgd": "sgd", "adam": "adam", "clip_by_global_norm|sgd": "sgd", "momentum": "momentum"}


def dataset(at: np.ndarray, grid: dict[str, list], chains=("sgd", "adam")) -> xr.Dataset:
    """A result Dataset whose runs diverge at ``at`` (shape (chains, *grid), -1 = never).

    Per-step values follow the divergence semantics: measured up to and including the step of
    divergence, NaN after it; ``clipped`` is False after it. Each chain carries its
    ``stability_rule`` coordinate, as gl.run writes it.
    """
    at = np.asarray(at)
    dims = ("optimizer", *grid)
    assert at.shape == (len(chains), *(len(v) for v in grid.values()))
    step = np.arange(STEPS)
    live = (at[..., None] < 0) | (step <= at[..., None])
    per_step = (*dims, "step")
    return xr.Dataset(
        {
            "loss": (per_step, np.where(live, 1.0, np.nan)),
            "grad_norm": (per_step, np.where(live, 1.0, np.nan)),
            "clipped": (per_step, np.zeros(live.shape, bool)),
            "diverged": (dims, at >= 0),
            "diverged_at": (dims, at.astype(np.int32)),
            "final_loss": (dims, np.where(at >= 0, np.nan, 0.5)),
        },
        coords={
            "optimizer": list(chains),
            "stability_rule": ("optimizer", [RULES.get(c, "") for c in chains]),
            **grid,
            "step": step,
        },
        attrs={"spec": "steps = 5\n"},
    )


# A 2-chain sweep over seed x learning_rate x init_scale with a known divergence pattern.
GRID = {"seed": [0, 1, 2], "learning_rate": [0.01, 0.1, 1.0], "init_scale": [1.0, 2.0]}
AT = np.full((2, 3, 3, 2), -1)
AT[0, :, 2, :] = 1  # sgd: every seed diverges at lr = 1 (both init scales)
AT[0, 0, 1, 1] = 3  # sgd: seed 0 also diverges at lr = 0.1, init_scale = 2
AT[1, 1, 2, 1] = 0  # adam: only seed 1 at lr = 1, init_scale = 2, right at step 0


def divergence_dataset() -> xr.Dataset:
    """The sweep of GRID and AT."""
    return dataset(AT, GRID)


def comparison_dataset() -> xr.Dataset:
    """Two chains over seed x learning_rate with every table column known by hand."""
    grid = {"seed": [0, 1], "learning_rate": [0.1, 1.0]}
    at = np.array([[[-1, 2], [-1, -1]], [[-1, -1], [-1, -1]]])
    ds = dataset(at, grid, chains=("sgd", "clip_by_global_norm|sgd"))
    sgd = {"optimizer": "sgd"}
    # final losses: the diverged run gets a finite value to prove it is masked by `diverged`
    ds["final_loss"] = ds["final_loss"].copy(data=[[[0.5, 99.0], [0.7, 0.9]], [[1, 2], [3, 4]]])
    ds["test_accuracy"] = ds["final_loss"] * 0 + 0.8
    clipped = ds["clipped"].values
    clipped[0, 0, 1, 1] = True  # the diverged run, before its divergence step (2): counts
    clipped[0, 0, 1, 4] = True  # the diverged run after divergence: does not
    clipped[0, 1, 0, 0] = True
    clipped[1, :, :, :] = True  # the clip chain clips every step
    ds["clipped"] = ds["clipped"].copy(data=clipped)
    g = ds["grad_norm"].values
    g[0, 0, 1, 2] = np.inf  # non-finite gradient at divergence: not the max gradient norm
    g[0, 0, 1, 4] = 1e9  # not alive: ignored
    g[0, 1, 1, 3] = 7.0
    ds["grad_norm"] = ds["grad_norm"].copy(data=g)
    bound = 2.0 / ds["learning_rate"] + 0 * ds["loss"].fillna(0)
    sharp = xr.full_like(bound, np.nan)
    sharp.loc[{**sgd, "step": 0}] = 0.5 * bound.sel(**sgd, step=0)
    sharp.loc[{**sgd, "step": 2}] = 1.5 * bound.sel(**sgd, step=2)
    clip = {"optimizer": "clip_by_global_norm|sgd", "step": 0}
    sharp.loc[clip] = 0.25 * bound.sel(clip)
    ds["sharpness"], ds["sharpness_bound"] = sharp, bound
    return ds


def layered(deltas: np.ndarray, widths=None) -> xr.Dataset:
    """One chain, an init_scale axis, 5 steps, the given delta_rms per (init_scale, layer).

    ``widths``: the ``layer_width`` coordinate (default: every layer 8 wide; ``False``: none, as
    in a Dataset written before gradlab recorded the widths).
    """
    deltas = np.asarray(deltas, dtype=float)
    n, layers = deltas.shape
    ds = dataset(np.full((1, n), -1), {"init_scale": list(range(1, n + 1))}, chains=("sgd",))
    data = np.broadcast_to(deltas[None, :, None, :], (1, n, STEPS, layers))
    ds["delta_rms_layer"] = (("optimizer", "init_scale", "step", "layer"), data.copy())
    ds = ds.assign_coords(layer=np.arange(layers))
    if widths is False:
        return ds
    widths = [8] * layers if widths is None else widths
    return ds.assign_coords(layer_width=("layer", np.asarray(widths, np.int64)))


# sgd does not read clip_norm, the clipped chain does: gl.run trains sgd once per (seed, lr)
# and writes copies of it along clip_norm (the ``reads_<axis>`` coordinates say so).
UNREAD_GRID = {
    "seed": list(range(6)),
    "learning_rate": [0.1, 1.0, 10.0],
    "clip_norm": [1.0, 3.0, 10.0],
}
UNREAD_AT = np.full((2, 6, 3, 3), -1)
UNREAD_AT[0, :, 2, :] = 2  # sgd: every seed diverges at lr = 10 (the same run, copied)
UNREAD_AT[0, 0, 1, :] = 3  # sgd: seed 0 also at lr = 1
UNREAD_AT[1, 2, 2, 1] = 1  # clipped, clip_norm = 3: seed 2 at lr = 10
UNREAD_AT[1, :, 2, 2] = 0  # clipped, clip_norm = 10: every seed at lr = 10
UNREAD_AT[1, 1, 1, 2] = 4  # clipped, clip_norm = 10: seed 1 at lr = 1


def unread_axis_dataset() -> xr.Dataset:
    """sgd and ``clip_by_global_norm|sgd`` over seed (6) x learning_rate x clip_norm.

    sgd's runs are copies along clip_norm of its runs at clip_norm = 1 (divergence, final loss
    and test accuracy alike); the clipped chain's differ per clip norm. ``final_loss`` and
    ``test_accuracy`` are distinct per run (NaN where the run diverged), the initial loss is 1.
    """
    chains = ("sgd", "clip_by_global_norm|sgd")
    ds = dataset(UNREAD_AT, UNREAD_GRID, chains=chains)
    rng = np.random.default_rng(16)
    loss = rng.uniform(0.1, 0.8, UNREAD_AT.shape)
    acc = rng.uniform(0.5, 0.95, UNREAD_AT.shape)
    loss[0], acc[0] = loss[0, ..., :1], acc[0, ..., :1]  # sgd: copies of clip_norm = 1
    div = UNREAD_AT >= 0
    ds["final_loss"] = ds["final_loss"].copy(data=np.where(div, np.nan, loss))
    ds["test_accuracy"] = ds["final_loss"].copy(data=np.where(div, np.nan, acc))
    return ds.assign_coords(
        reads_learning_rate=("optimizer", [True, True]),
        reads_clip_norm=("optimizer", [False, True]),
    )


def partial(ds: xr.Dataset, finished: np.ndarray) -> xr.Dataset:
    """``ds`` as ``gl.load(dir, partial=True)`` returns it with only ``finished`` runs done.

    Unfinished runs hold NaN floats, False flags and ``diverged_at`` -1; the boolean variable
    ``finished`` over ``(optimizer, *grid)`` marks the others.
    """
    done = xr.DataArray(np.asarray(finished, bool), dims=ds["diverged"].dims)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if name == "diverged_at":
            out[name] = var.where(done, -1)
        elif var.dtype == bool:
            out[name] = var & done
        elif var.dtype.kind == "f":
            out[name] = var.where(done)
    out["finished"] = done
    return out


def survived_dataset() -> xr.Dataset:
    """One clipped chain over seed (3) x learning_rate [0.1, 1, 3.16, 10]: it trains at 0.1 and
    1, survives at chance at 3.16 and diverges at 10.

    Every run starts at loss 8 (a large init) and minibatch accuracy 0.1 (ten classes). At 0.1
    and 1 the runs end at final loss 0.5 / 0.3 (+0.01 per seed) and test accuracy 0.85 / 0.9;
    at 3.16 they survive, collapsed to a uniform prediction: final loss 2.3 (below 0.9 x 8) at
    test accuracy 0.1.
    """
    grid = {"seed": [0, 1, 2], "learning_rate": [0.1, 1.0, 3.16, 10.0]}
    at = np.full((1, 3, 4), -1)
    at[0, :, 3] = 2
    ds = dataset(at, grid, chains=("clip_by_global_norm|sgd",))
    ds["loss"] = ds["loss"] * 8.0
    ds["accuracy"] = ds["loss"] * 0 + 0.1
    seed = np.arange(3)[:, None] * 0.01
    final = np.array([0.5, 0.3, 2.3, np.nan])[None, :] + seed
    ds["final_loss"] = ds["final_loss"].copy(data=final[None])
    test = np.array([0.85, 0.9, 0.1, np.nan])[None, :] + 0 * seed
    ds["test_accuracy"] = ds["final_loss"].copy(data=test[None])
    return ds


def sensitivity_dataset() -> xr.Dataset:
    """sgd and adam over seed (3) x learning_rate (4), with step-0 losses 2 + 0.1·seed and
    final losses chosen by hand: some runs diverge, some end above their step-0 loss.

    sgd, seed 0: [1.0, 0.5, 3.0 (above ℓ₀), diverged]; adam's runs never diverge.
    """
    grid = {"seed": [0, 1, 2], "learning_rate": [1e-3, 1e-2, 1e-1, 1.0]}
    at = np.full((2, 3, 4), -1)
    at[0, :, 3] = 2  # sgd diverges at lr = 1 for every seed
    at[0, 2, 2] = 1  # and seed 2 also at lr = 0.1
    ds = dataset(at, grid)
    initial = 2.0 + 0.1 * np.arange(3)
    loss = ds["loss"].values * initial[None, :, None, None]
    ds["loss"] = ds["loss"].copy(data=loss)
    final = np.array(
        [
            [[1.0, 0.5, 3.0, 7.0], [1.2, 0.4, 0.9, 7.0], [1.1, 0.6, 9.0, 7.0]],
            [[1.5, 0.8, 0.7, 0.9], [1.4, 0.9, 0.6, 2.5], [1.6, 0.7, 0.8, 1.0]],
        ]
    )
    ds["final_loss"] = ds["final_loss"].copy(data=np.where(at >= 0, np.nan, final))
    return ds


# catapult_dataset: each run's loss curve and sharpness by its phase (5 logged steps, L0 = 1).
CATAPULT_LOSS = {
    "monotone": [1.0, 0.8, 0.6, 0.5, 0.4],
    "catapult": [1.0, 3.0, 2.0, 0.7, 0.5],
    "unresolved": [1.0, 3.0, 2.0, 0.7, 0.5],
    "unconverged": [1.0, 3.0, 4.0, 5.0, 6.0],
    "diverged": [1.0, 5.0, 20.0, np.nan, np.nan],
}
CATAPULT_LAMBDA0 = [10.0, 20.0]  # per seed
CATAPULT_LR = [0.05, 0.15, 0.25, 0.5, 1.0]  # c = 0.5 ... 10 (seed 0), 1 ... 20 (seed 1)
CATAPULT_KINDS = [
    ["monotone", "monotone", "catapult", "catapult", "diverged"],
    ["monotone", "catapult", "unresolved", "unconverged", "diverged"],
]


def catapult_dataset(sharpness: bool = True) -> xr.Dataset:
    """sgd over seed (2) x learning_rate (5) with the loss curves of CATAPULT_KINDS.

    λ₀ is CATAPULT_LAMBDA0 per seed (``initial_sharpness``). With ``sharpness``: the recorded
    sharpness is λ₀ throughout for monotone runs, 0.5·(2/η) from step 2 on for catapults (λ₀
    before), 1.5·(2/η) from step 1 on for the unresolved run, λ₀ then NaN for the others;
    ``sharpness_bound`` is 2/η.
    """
    grid = {"seed": [0, 1], "learning_rate": CATAPULT_LR}
    at = np.full((1, 2, 5), -1)
    at[0, 0, 4] = at[0, 1, 4] = 2
    ds = dataset(at, grid, chains=("sgd",))
    loss = np.array([[CATAPULT_LOSS[k] for k in row] for row in CATAPULT_KINDS])[None]
    ds["loss"] = ds["loss"].copy(data=loss)
    ds["initial_sharpness"] = (("seed",), np.array(CATAPULT_LAMBDA0))
    if not sharpness:
        return ds
    bound = 2.0 / np.array(CATAPULT_LR)[None, :, None] + np.zeros((2, 5, STEPS))
    lam = np.array(CATAPULT_LAMBDA0)[:, None, None] + np.zeros((2, 5, STEPS))
    for s, row in enumerate(CATAPULT_KINDS):
        for i, kind in enumerate(row):
            if kind == "catapult":
                lam[s, i, 2:] = 0.5 * bound[s, i, 2:]
            elif kind == "unresolved":
                lam[s, i, 1:] = 1.5 * bound[s, i, 1:]
            elif kind != "monotone":
                lam[s, i, 1:] = np.nan
    dims = ("optimizer", "seed", "learning_rate", "step")
    ds["sharpness"] = (dims, lam[None])
    ds["sharpness_bound"] = (dims, bound[None])
    return ds
