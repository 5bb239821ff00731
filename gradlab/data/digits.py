"""scikit-learn's 8x8 handwritten digits, in one fixed stratified split."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from gradlab.data.dataset import Dataset, stratified_split, take_prefix

__all__ = ["load_digits"]


def load_digits(
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    root: pathlib.Path,
    options: Mapping[str, Any],
) -> Dataset:
    """The ``"digits"`` loader of :func:`gradlab.data.load`: scikit-learn's 8x8 digits.

    The 1,797 images, pixels / 16 in [0, 1] and flattened to 64, split 1,437 train / 360 test,
    stratified (36 test images per class) and shuffled with a fixed seed. No options; ``seed``
    and ``root`` are ignored (one fixed split, nothing read from disk but scikit-learn's copy).

    Args:
      n_train: take the first ``n_train`` training examples (default: all).
      n_test: the same for the test set.
      seed: unused.
      root: unused.
      options: none.

    Returns:
      The dataset, 10 classes.

    Raises:
      ConfigError: if more examples are asked for than there are.
    """
    import sklearn.datasets

    x, y = sklearn.datasets.load_digits(return_X_y=True)
    train, test = stratified_split(y, test_per_class=36)
    return take_prefix(
        "digits", x[train], y[train], x[test], y[test], 10, n_train, n_test, scale=16
    )
