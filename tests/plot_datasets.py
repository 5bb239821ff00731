"""Synthetic result Datasets for the plot tests, and helpers to inspect the figures drawn."""

from __future__ import annotations

import io

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from gradlab import analysis


def make_dataset(
    grid: dict[str, list],
    chains: tuple[str, ...] = ("sgd", "clip_by_global_norm|adam"),
    *,
    steps: int = 8,
    layers: int = 4,
    diverge: str = "some",
    sharpness: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """A synthetic result Dataset with the engine's variables and divergence semantics."""
    rng = np.random.default_rng(seed)
    dims = ("optimizer", *grid)
    shape = (len(chains), *(len(v) for v in grid.values()))
    when = rng.integers(0, steps, shape)
    at = {
        "none": np.full(shape, -1),
        "all": when,
        "some": np.where(rng.random(shape) < 0.4, when, -1),
    }[diverge]
    step = np.arange(steps)
    live = (at[..., None] < 0) | (step <= at[..., None])
    at_step = step == at[..., None]

    def per_step(values, at_divergence=None):
        values = np.where(live, values, np.nan)
        return np.where(at_step, at_divergence, values) if at_divergence is not None else values

    noise = rng.random((*shape, steps))
    noise_da = xr.DataArray(noise, dims=(*dims, "step"))
    layer = np.arange(layers)
    lay = (*shape, steps, layers)
    ds = xr.Dataset(
        {
            "loss": ((*dims, "step"), per_step(2.3 * np.exp(-0.2 * step) + noise, np.inf)),
            "accuracy": ((*dims, "step"), per_step(0.1 + 0.1 * step / steps + 0 * noise)),
            "grad_norm": ((*dims, "step"), per_step(1.0 + noise, 1e6)),
            "grad_max_abs": ((*dims, "step"), per_step(0.1 + noise)),
            "update_norm": ((*dims, "step"), per_step(0.01 + noise)),
            "clipped": ((*dims, "step"), live & (noise > 0.5)),
            "grad_norm_layer": ((*dims, "step", "layer"), 0.5**-layer * rng.random(lay) + 0.1),
            "delta_rms_layer": ((*dims, "step", "layer"), 1.5**-layer * (1 + rng.random(lay))),
            "act_rms_layer": ((*dims, "step", "layer"), 1 + rng.random(lay)),
            "diverged": (dims, at >= 0),
            "diverged_at": (dims, at.astype(np.int32)),
            "final_loss": (dims, np.where(at >= 0, np.nan, 0.3 + rng.random(shape))),
            "test_loss": (dims, np.where(at >= 0, np.nan, 0.4 + rng.random(shape))),
            "test_accuracy": (dims, np.where(at >= 0, np.nan, 0.9 + 0 * rng.random(shape))),
        },
        coords={
            "optimizer": list(chains),
            **grid,
            "step": step,
            "layer": layer,
            "layer_width": ("layer", np.full(layers, 16)),
        },
        attrs={"spec": "steps = 8\n", "gradlab_version": "0.1.0", "devices": 1},
    )
    for name in ("grad_norm_layer", "delta_rms_layer", "act_rms_layer"):
        ds[name] = ds[name].where(analysis.alive(ds))
    if sharpness:
        lr = ds["learning_rate"] if "learning_rate" in grid else 0.1
        bound = (2.0 / lr) + 0 * ds["loss"].fillna(0)
        ds["sharpness"] = (bound * (0.5 + noise_da)).where(analysis.alive(ds) & (ds.step % 3 == 0))
        ds["sharpness_bound"] = bound.where(analysis.alive(ds))
    return ds


LR = [1e-3, 1e-2, 1e-1, 1.0]
TWO_D = {"seed": [0, 1], "learning_rate": LR, "init_scale": [1.0, 2.0]}
SHAPES = {
    "2d": dict(grid={"seed": [0, 1, 2], "learning_rate": LR, "init_scale": [0.5, 1.0, 2.0]}),
    "1d_no_seed": dict(grid={"learning_rate": LR}),
    "2d_no_seed": dict(grid={"learning_rate": LR, "init_scale": [0.5, 1.0, 2.0, 4.0]}),
    "categorical": dict(grid={"seed": [0, 1], "activation": ["relu", "tanh"], "learning_rate": LR}),
    "pooled_axis": dict(grid={**TWO_D, "momentum": [0.0, 0.9]}),
    "all_diverged": dict(grid=TWO_D, diverge="all"),
    "none_diverged": dict(grid=TWO_D, diverge="none"),
    "length_one_axes": dict(
        grid={"seed": [0], "learning_rate": [0.1], "clip_norm": [1.0]}, chains=("sgd",)
    ),
}


def shape_ds(name: str) -> xr.Dataset:
    kw = dict(SHAPES[name])
    return make_dataset(kw.pop("grid"), **kw)


def render(fig: Figure) -> bytes:
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    png = buf.getvalue()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return png


def panels(fig: Figure) -> list:
    """The data axes of a figure (colorbars excluded)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def phase_axes(ds: xr.Dataset) -> tuple[str, str | None]:
    swept = [d for d in analysis.grid_axes(ds) if d != "seed" and ds.sizes[d] > 1]
    x = "learning_rate" if "learning_rate" in swept else analysis.grid_axes(ds)[-1]
    others = [d for d in swept if d != x]
    return x, (others[0] if others else None)
