"""The :class:`Dataset` type and the one way every loader builds one.

:func:`from_arrays` validates arrays into a :class:`Dataset` (a user's arrays, and every
loader's result). The loaders share the rest: :func:`take_prefix` (the first ``n_train`` /
``n_test`` examples of a fixed split), :func:`stratified_split` (the fixed shuffled split of
the real-image datasets) and :func:`check_int` / :func:`check_real` (argument and option
checks whose errors name the field).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from gradlab.errors import ConfigError

__all__ = [
    "SPLIT_SEED",
    "Dataset",
    "check_int",
    "check_real",
    "from_arrays",
    "stratified_split",
    "take_prefix",
]

SPLIT_SEED = 0  # the fixed shuffle of the real-image datasets (mnist subset, digits)


class Dataset(NamedTuple):
    """A train/test split of flattened features and labels or targets, as host arrays.

    Attributes:
      x_train: ``float32`` features, shape ``[n_train, d]``.
      y_train: ``int32`` class labels ``[n_train]`` (classification) or ``float32`` targets
        ``[n_train, k]`` (regression).
      x_test: ``float32`` features, shape ``[n_test, d]`` (``n_test`` may be 0).
      y_test: labels or targets of the test examples, like ``y_train``.
      num_classes: the number of classes, or ``None`` for regression.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None


def from_arrays(
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    num_classes: int | None = None,
) -> Dataset:
    """Validates user arrays and returns them as a :class:`Dataset`.

    Features are flattened to ``[n, d]`` and cast to ``float32``. The task follows from
    ``y_train``: integer-valued 1-D labels (any integer dtype, or floats that are all whole
    numbers), or any labels when ``num_classes`` is given, mean classification (``int32``
    labels; ``num_classes`` defaults to the largest label + 1, over train and test); anything
    else is regression with ``float32`` targets ``[n, k]`` (a 1-D target becomes ``[n, 1]``;
    pass ``[n, 1]`` floats to regress whole-number targets). Inputs may be NumPy arrays,
    nested lists or JAX arrays; outputs may share memory with them.

    Args:
      x_train: training features, ``[n, ...]``.
      y_train: training labels ``[n]`` or targets ``[n]`` / ``[n, k]``.
      x_test: test features, with the same trailing size as ``x_train``; or ``None``.
      y_test: test labels or targets; given together with ``x_test``.
      num_classes: the number of classes (classification only); must exceed every label.

    Returns:
      The dataset. Without test arrays the test set is empty (``x_test`` of shape ``[0, d]``,
      ``y_test`` of shape ``[0]`` or ``[0, k]``); the training set is never reused as test set.

    Raises:
      ConfigError: naming the array at fault: non-numeric, empty or non-finite values,
        mismatched row or feature counts, negative labels or labels >= ``num_classes``, only
        one of ``x_test`` / ``y_test``, or ``num_classes`` with non-integer targets.
    """
    if (x_test is None) != (y_test is None):
        raise ConfigError("data: give both x_test and y_test, or neither")
    x_train = _features("x_train", x_train)
    y_train = _numeric("y_train", y_train)
    _check_rows("x_train", x_train, "y_train", y_train)
    if x_test is None:
        x_test = np.zeros((0, x_train.shape[1]), np.float32)
        y_test = np.zeros((0, *y_train.shape[1:]), y_train.dtype)
    else:
        x_test = _features("x_test", x_test, allow_empty=True)
        y_test = _numeric("y_test", y_test)
        _check_rows("x_test", x_test, "y_test", y_test)
        if x_test.shape[1] != x_train.shape[1]:
            raise ConfigError(
                f"data: x_test has {x_test.shape[1]} features but x_train has {x_train.shape[1]}"
            )

    if num_classes is not None or _is_labels(y_train):
        y_train, y_test = _labels("y_train", y_train), _labels("y_test", y_test)
        largest = max(int(y_train.max()), int(y_test.max(initial=0)))
        if num_classes is None:
            num_classes = largest + 1
        check_int("num_classes", num_classes, 1)
        if largest >= num_classes:
            raise ConfigError(f"data: label {largest} is out of range for {num_classes} classes")
        return Dataset(x_train, y_train, x_test, y_test, int(num_classes))

    y_train, y_test = _targets("y_train", y_train), _targets("y_test", y_test)
    if y_test.shape[1] != y_train.shape[1]:
        raise ConfigError(
            f"data: y_test has {y_test.shape[1]} target columns but y_train has {y_train.shape[1]}"
        )
    return Dataset(x_train, y_train, x_test, y_test, None)


def take_prefix(
    name: str,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    num_classes: int | None,
    n_train: int | None,
    n_test: int | None,
    scale: float = 1,
) -> Dataset:
    """Takes the first examples of a loader's fixed split, as a validated :class:`Dataset`.

    Args:
      name: the dataset's name, for the error message.
      x_train, y_train, x_test, y_test: the whole fixed split.
      num_classes: as for :func:`from_arrays`.
      n_train: keep the first ``n_train`` training examples (``None``: all).
      n_test: the same for the test set.
      scale: the features are cast to ``float32`` and divided by it (255 for pixels).

    Returns:
      The dataset, validated by :func:`from_arrays`.

    Raises:
      ConfigError: if ``n_train`` or ``n_test`` exceeds what the split has.
    """
    for key, n, have in (("n_train", n_train, len(x_train)), ("n_test", n_test, len(x_test))):
        if n is not None and n > have:
            raise ConfigError(f"data: {key}={n} but {name!r} has only {have} such examples")
    return from_arrays(
        np.asarray(x_train[:n_train], np.float32) / np.float32(scale),
        y_train[:n_train],
        np.asarray(x_test[:n_test], np.float32) / np.float32(scale),
        y_test[:n_test],
        num_classes,
    )


def stratified_split(y: np.ndarray, test_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits examples into train and test, ``test_per_class`` test examples per class.

    Each class's members are permuted and the first ``test_per_class`` go to the test set;
    both index sets are then shuffled. The generator is seeded with ``SPLIT_SEED``, so the
    split is the same on every call: every experiment is scored on the same test set.

    Args:
      y: the class label of each example, ``[n]``.
      test_per_class: how many examples of each class the test set gets.

    Returns:
      The train and test indices into ``y``.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    """Returns ``value`` as an ``int`` if it is an integer (not a bool) in ``[low, high]``.

    Raises:
      ConfigError: naming ``key`` otherwise.
    """
    if (
        not isinstance(value, int | np.integer)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"data: {key}={value!r} must be an integer {bound}")
    return int(value)


def check_real(key: str, value: Any, low: float, high: float | None = None) -> float:
    """Returns ``value`` as a ``float`` if it is a finite number with ``low <= value``, and
    ``value < high`` when ``high`` is given (a bool is not a number here).

    Raises:
      ConfigError: naming ``key`` otherwise.
    """
    if (
        not isinstance(value, int | float | np.integer | np.floating)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < low
        or (high is not None and value >= high)
    ):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ConfigError(f"data: {key}={value!r} must be a finite number {bound}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Validation of from_arrays' arrays.


def _numeric(key: str, a: Any) -> np.ndarray:
    try:
        a = np.asarray(a)
    except ValueError as err:  # ragged nested lists
        raise ConfigError(f"data: {key} is not a rectangular array ({err})") from None
    if a.dtype.kind in "cmMOSUV" and a.dtype.name != "bfloat16":
        raise ConfigError(f"data: {key} must be real numbers, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ConfigError(f"data: {key} must have a leading example axis, got a scalar")
    return a


def _features(key: str, x: Any, allow_empty: bool = False) -> np.ndarray:
    x = _numeric(key, x)
    x = np.ascontiguousarray(x.reshape(len(x), math.prod(x.shape[1:])), np.float32)
    if (len(x) == 0 and not allow_empty) or x.shape[1] == 0:
        raise ConfigError(f"data: {key} is empty (shape {list(x.shape)})")
    if not np.isfinite(x).all():
        raise ConfigError(f"data: {key} contains NaN/inf")
    return x


def _check_rows(x_key: str, x: np.ndarray, y_key: str, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise ConfigError(f"data: {x_key} has {len(x)} rows but {y_key} has {len(y)}")


def _is_labels(y: np.ndarray) -> bool:
    if y.ndim != 1:
        return False
    if y.dtype.kind in "biu":
        return True
    return bool(np.isfinite(y).all() and (y == np.round(y)).all())


def _is_one_hot(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def _labels(key: str, y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise ConfigError(f"data: {key} class labels must be 1-D, got shape {list(y.shape)}")
    if y.dtype.kind not in "biu" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise ConfigError(f"data: {key} class labels must be whole numbers")
    if y.size and y.min() < 0:
        raise ConfigError(f"data: {key} has a negative class label ({y.min()})")
    if y.size and y.max() >= 2**31:
        raise ConfigError(f"data: {key} has a class label too large for int32 ({y.max()})")
    return np.ascontiguousarray(y, np.int32)


def _targets(key: str, y: np.ndarray) -> np.ndarray:
    if y.ndim > 2:
        raise ConfigError(f"data: {key} regression targets must be [n] or [n, k], got {y.shape}")
    if y.ndim == 2 and y.shape[1] > 1 and len(y) and _is_one_hot(y):
        raise ConfigError(
            f"data: {key} looks one-hot ({y.shape[1]} columns of 0/1, one 1 per row): pass the "
            f"class labels ({key}.argmax(1)) for classification; loss='mse' on labels trains "
            "against the one-hot vectors"
        )
    y = np.ascontiguousarray(y if y.ndim == 2 else y[:, None], np.float32)
    if not np.isfinite(y).all():
        raise ConfigError(f"data: {key} contains NaN/inf")
    return y
