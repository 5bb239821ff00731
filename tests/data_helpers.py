"""Helpers shared by the gradlab.data tests: MNIST IDX files written independently of the
reader under test, and an order-free comparison of examples."""

import numpy as np

from gradlab import data

MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encodes an array as an IDX file, written independently of the reader under test."""
    code = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    header = bytes([0, 0, code[array.dtype.str[1:]], array.ndim])
    dims = b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def fake_mnist(n_train: int = 30, n_test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """Random uint8 images and digit labels, keyed by MNIST file name."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def expected_mnist(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """What load("mnist") must return for these IDX arrays: pixels / 255, flattened."""
    train, test = arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]
    return (
        train.reshape(len(train), 784) / 255.0,
        arrays["train-labels-idx1-ubyte"],
        test.reshape(len(test), 784) / 255.0,
        arrays["t10k-labels-idx1-ubyte"],
    )


def assert_mnist_equals(ds: data.Dataset, arrays: dict[str, np.ndarray]) -> None:
    x_train, y_train, x_test, y_test = expected_mnist(arrays)
    np.testing.assert_allclose(ds.x_train, x_train, rtol=1e-7)
    np.testing.assert_allclose(ds.x_test, x_test, rtol=1e-7)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.num_classes == 10


def row_multiset(x: np.ndarray, y: np.ndarray) -> list[tuple[int, bytes]]:
    """The (label, row) pairs of a dataset, sorted: equal iff same examples in any order."""
    return sorted(zip(y.tolist(), map(bytes, np.ascontiguousarray(x)), strict=True))
