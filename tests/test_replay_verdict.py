"""``gl.replay`` says when its verdict differs from the sweep's (a boundary run's rounding)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradlab as gl


def test_replay_warns_when_the_divergence_step_differs_from_the_sweeps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    data = gl.data.from_arrays(x, x[:, :1] * 2.0, x[:8], x[:8, :1] * 2.0)
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(4,)),
        data=data,
        loss="mse",
        optimizers=("sgd",),
        grid={"seed": [0], "learning_rate": [0.05, 50.0]},
        steps=6,
        batch_size=None,
    )
    ds = gl.run(spec, chunk_size=1, progress=False)
    at = {"optimizer": "sgd", "seed": 0}
    assert int(ds["diverged_at"].sel(dict(at, learning_rate=0.05))) == -1
    assert int(ds["diverged_at"].sel(dict(at, learning_rate=50.0))) >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same verdict: silent
        gl.replay(ds, spec=spec, learning_rate=50.0, **at)
    # a sweep whose record of this run says otherwise, as a chunk's rounding can on the edge
    edited = ds.copy(deep=True)
    edited["diverged_at"].loc[dict(at, learning_rate=0.05)] = 3
    with pytest.warns(UserWarning, match=r"divergence step is -1, the sweep's 3"):
        gl.replay(edited, spec=spec, learning_rate=0.05, **at)
