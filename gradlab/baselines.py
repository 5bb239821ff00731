"""Reference implementations outside gradlab, to put their numbers beside gradlab's.

:func:`keras_article_mlp` runs the Keras code of the article gradlab began from (section 4:
``Sequential`` 784-10-10-10, ReLU, softmax, Adam, sparse categorical cross-entropy, batch 32,
10 epochs) on a :class:`gradlab.data.Dataset`. Keras is not a dependency of gradlab itself; the
``dev`` extra installs it (Keras 3 on its JAX backend needs nothing beyond gradlab's own
dependencies), and ``tests/test_baselines.py`` trains both on the same data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["keras_article_mlp"]


def keras_article_mlp(
    data: Any,
    *,
    seeds: Sequence[int] = (0,),
    epochs: int = 10,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Train the article's Keras MLP and report its accuracy.

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
    batch kept. Each seed is set with ``keras.utils.set_random_seed`` (it also seeds Python's and
    NumPy's global generators); ``KERAS_BACKEND`` defaults to ``"jax"``.

    Args:
      data: a :class:`gradlab.data.Dataset` (flattened images, integer labels).
      seeds: one training run per seed.
      epochs: passes over the training set (the article: 10).
      batch_size: examples per step (the article: 32).

    Returns:
      ``test_accuracy``, ``test_loss``, ``train_accuracy`` (arrays over seeds, as Keras reports
      them), ``seeds``, ``keras_version``, ``backend``, ``n_train``, ``n_test``, ``epochs``,
      ``batch_size``.

    Raises:
      ImportError: Keras is not installed (``pip install keras``, or the ``dev`` extra).

    Example:
      >>> keras_article_mlp(gl.data.load("mnist"), seeds=[0])  # doctest: +SKIP
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError as err:
        raise ImportError(
            "keras_article_mlp needs Keras 3: pip install keras (or gradlab's dev extra)"
        ) from err
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
    }
