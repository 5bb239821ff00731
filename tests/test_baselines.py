"""gradlab.baselines: the article's Keras code, or its recorded numbers where Keras is missing."""

from __future__ import annotations

import builtins
import importlib.util

import numpy as np
import pytest

from gradlab import baselines, data


def _without_keras(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "keras" or name.startswith("keras."):
            raise ImportError("No module named 'keras'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_recorded_numbers_without_keras(monkeypatch):
    _without_keras(monkeypatch)
    ds = data.load("digits")
    ref = baselines.keras_article_mlp(ds, seeds=range(2))
    assert ref["source"].startswith("recorded: Keras is not installed")
    rec = baselines.ARTICLE_KERAS_RECORDED
    np.testing.assert_array_equal(ref["test_accuracy"], rec["test_accuracy"])
    assert len(rec["test_accuracy"]) == len(rec["seeds"]) == len(rec["test_loss"])
    assert all(0.5 < a < 1 for a in rec["test_accuracy"])  # a real measurement, not a stub
    with pytest.raises(ImportError):
        baselines.keras_article_mlp(ds, allow_recorded=False)


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras not installed")
def test_keras_runs_the_article_model_when_installed():
    import jax

    ds = data.load("digits", n_train=256, n_test=64)
    with jax.numpy_rank_promotion("allow"):  # Keras broadcasts biases; conftest makes it raise
        ref = baselines.keras_article_mlp(ds, seeds=[0], epochs=2)
    assert ref["source"] == "run" and ref["n_train"] == 256
    assert 0.0 <= float(ref["test_accuracy"][0]) <= 1.0
