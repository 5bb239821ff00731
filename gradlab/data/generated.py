"""Generated datasets: MNIST-1D (Greydanus 2020), teacher-student data, and Gaussian noise.

All are drawn from ``seed`` alone, with NumPy on the host: the same arguments give identical
arrays. Their options and defaults are ``MNIST1D_DEFAULTS``, ``TEACHER_DEFAULTS`` and
``GAUSSIAN_DEFAULTS``.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from gradlab.data.dataset import Dataset, check_int, check_real, from_arrays, take_prefix
from gradlab.errors import ConfigError

__all__ = [
    "GAUSSIAN_DEFAULTS",
    "GAUSSIAN_N_TRAIN",
    "MNIST1D_DEFAULTS",
    "TEACHER_DEFAULTS",
    "generate_gaussian",
    "generate_mnist1d",
    "generate_teacher",
]

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

GAUSSIAN_DEFAULTS: dict[str, Any] = {"input_dim": 16, "output_dim": 1}
# As many examples as the parameters of Sohl-Dickstein 2024's network on the default options:
# 16 inputs, one hidden layer of 16, one output, no biases: 16·16 + 16·1.
GAUSSIAN_N_TRAIN = 272

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


def generate_mnist1d(
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    root: pathlib.Path,
    options: Mapping[str, Any],
) -> Dataset:
    """The ``"mnist1d"`` loader of :func:`gradlab.data.load`: MNIST-1D, generated.

    10 one-dimensional digit templates, randomly padded, scaled, translated, filled with
    correlated noise, perturbed by iid noise, sheared and resampled to 40 points; the whole set
    is then normalised to mean 0 and standard deviation 1, and the first ``train_split`` of a
    random shuffle is the training set (4,000 / 1,000 by default). The options and defaults
    are the reference's (``MNIST1D_DEFAULTS``), and so is the order of the random draws:
    ``seed=42`` (the reference's seed) reproduces ``make_dataset()`` of the reference package
    (checked against ``mnist1d`` 0.0.2.post1: identical after the cast to float32).

    Args:
      n_train: take the first ``n_train`` training examples (default: all).
      n_test: the same for the test set.
      seed: seeds ``np.random.RandomState``, as the reference does.
      root: unused.
      options: ``MNIST1D_DEFAULTS`` with the caller's values.

    Returns:
      The dataset, 10 classes.

    Raises:
      ConfigError: for an invalid option value, or more examples asked for than generated.

    References:
      Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439
      (https://github.com/greydanus/mnist1d).
    """
    from scipy.ndimage import gaussian_filter1d

    o = _mnist1d_options(options)
    length = len(_MNIST1D_TEMPLATES[0]) + o["padding"][1]  # the dilated length, 72 by default
    labels = np.repeat(np.arange(10), o["num_samples"] // 10)
    rng = np.random.RandomState(seed)
    signals, scale, shift, corr, iid, shear = _mnist1d_draws(rng, labels, length, o)

    # The transformations, all examples at once.
    grid = np.linspace(0, 1, length)
    x = signals * scale[:, None]
    x = np.take_along_axis(x, (np.arange(length) - shift[:, None]) % length, axis=1)  # roll
    x = np.where(x != 0, x, gaussian_filter1d(corr, 2, axis=1)) + iid
    x = x - shear[:, None] * np.linspace(-0.5, 0.5, length)
    final_seq_length = o["final_seq_length"]
    x = np.stack([np.interp(np.linspace(0, 1, final_seq_length), grid, row) for row in x])

    order = rng.permutation(len(labels))
    x, labels = x[order], labels[order]
    if o["shuffle_seq"]:
        x = x[:, rng.permutation(final_seq_length)]
    x = (x - x.mean()) / x.std()
    split = int(len(labels) * o["train_split"])
    return take_prefix(
        "mnist1d", x[:split], labels[:split], x[split:], labels[split:], 10, n_train, n_test
    )


def generate_teacher(
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    root: pathlib.Path,
    options: Mapping[str, Any],
) -> Dataset:
    """The ``"teacher"`` loader of :func:`gradlab.data.load`: a random teacher network's data.

    ``x ~ N(0, I)`` labelled by a random teacher MLP: weights ``W ~ N(0, 1/fan_in)``, no
    biases, tanh hidden layers, a linear output layer. For ``task="classification"`` the label
    is the argmax of the ``num_classes`` teacher logits plus ``noise`` times standard normal
    noise; for ``task="regression"`` the target is the ``output_dim`` teacher outputs plus that
    noise. The teacher depends only on ``seed`` and the widths, so the classification labels
    are the argmax of the regression targets with ``output_dim=num_classes``. The class
    frequencies are the teacher's, not balanced. Options ``TEACHER_DEFAULTS``; 4,000 / 1,000
    examples unless ``n_train`` / ``n_test`` say otherwise.

    Args:
      n_train: this many training examples are generated (default 4,000); the first examples
        do not depend on how many are asked for.
      n_test: the same for the test set (default 1,000).
      seed: seeds the teacher, the training inputs and the test inputs (three spawned streams).
      root: unused.
      options: ``TEACHER_DEFAULTS`` with the caller's values.

    Returns:
      The dataset: ``num_classes`` classes, or ``output_dim`` regression targets.

    Raises:
      ConfigError: for an invalid option value.
    """
    o = options
    input_dim = check_int("input_dim", o["input_dim"], 1)
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
        check_int("num_classes", o["num_classes"], 2)
        if classify
        else check_int("output_dim", o["output_dim"], 1)
    )
    noise = check_real("noise", o["noise"], 0)

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


def generate_gaussian(
    *,
    n_train: int | None,
    n_test: int | None,
    seed: int,
    root: pathlib.Path,
    options: Mapping[str, Any],
) -> Dataset:
    """The ``"gaussian"`` loader of :func:`gradlab.data.load`: random inputs, random targets.

    ``x ~ N(0, I_input_dim)`` and, independently, ``y ~ N(0, I_output_dim)``: regression of
    pure noise, the data of Sohl-Dickstein 2024's fractal trainability boundary (the reference
    notebook's ``gen_img`` draws ``X`` and ``Y`` so, with as many examples as the network has
    parameters). With nothing to learn but the examples themselves, a network with as many
    parameters as examples can just fit them, which is what makes its trainability boundary
    interesting. The default ``n_train`` is ``GAUSSIAN_N_TRAIN`` = 272, the parameters of the
    paper's network (16 -> 16 -> 1, no biases); the test set is empty unless ``n_test`` says
    otherwise.

    Args:
      n_train: this many training examples (default 272); the first examples do not depend on
        how many are asked for.
      n_test: the same for the test set (default 0).
      seed: seeds the training and the test examples (two spawned streams).
      root: unused.
      options: ``GAUSSIAN_DEFAULTS`` (``input_dim``, ``output_dim``) with the caller's values.

    Returns:
      The dataset: ``output_dim`` regression targets.

    Raises:
      ConfigError: for an invalid option value.

    References:
      Sohl-Dickstein, 2024, "The boundary of neural network trainability is fractal",
      arXiv:2402.06184 (https://github.com/Sohl-Dickstein/fractal).
    """
    input_dim = check_int("input_dim", options["input_dim"], 1)
    output_dim = check_int("output_dim", options["output_dim"], 1)
    streams = map(np.random.default_rng, np.random.SeedSequence(seed).spawn(2))

    def sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((n, input_dim + output_dim))  # row i: x_i then y_i
        return z[:, :input_dim], z[:, input_dim:]

    train_rng, test_rng = streams
    x_train, y_train = sample(train_rng, GAUSSIAN_N_TRAIN if n_train is None else n_train)
    x_test, y_test = sample(test_rng, 0 if n_test is None else n_test)
    return from_arrays(x_train, y_train, x_test, y_test, None)


# ----------------------------------------------------------------------------------------------
# MNIST-1D helpers.


def _mnist1d_options(o: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the MNIST-1D options; returns them as plain ints, floats and bools."""
    num_samples = check_int("num_samples", o["num_samples"], 10)
    train_split = check_real("train_split", o["train_split"], 0, 1)
    padding = o["padding"]
    if (
        not isinstance(padding, list | tuple)
        or len(padding) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in padding)
        or not 0 <= padding[0] <= padding[1]
    ):
        raise ConfigError(f"data: padding={padding!r} must be two integers 0 <= lo <= hi")
    length = len(_MNIST1D_TEMPLATES[0]) + padding[1]
    checked = {
        "num_samples": num_samples,
        "train_split": train_split,
        "padding": (padding[0], padding[1]),
        "scale_coeff": check_real("scale_coeff", o["scale_coeff"], 0),
        "max_translation": check_int("max_translation", o["max_translation"], 1, length),
        "corr_noise_scale": check_real("corr_noise_scale", o["corr_noise_scale"], 0),
        "iid_noise_scale": check_real("iid_noise_scale", o["iid_noise_scale"], 0),
        "shear_scale": check_real("shear_scale", o["shear_scale"], 0),
        "final_seq_length": check_int("final_seq_length", o["final_seq_length"], 2),
        "shuffle_seq": o["shuffle_seq"],
    }
    if not isinstance(o["shuffle_seq"], bool):
        raise ConfigError(f"data: shuffle_seq={o['shuffle_seq']!r} must be a bool")
    if int(num_samples // 10 * 10 * train_split) < 1:
        raise ConfigError("data: num_samples and train_split leave no training examples")
    return checked


def _mnist1d_draws(
    rng: np.random.RandomState, labels: np.ndarray, length: int, o: Mapping[str, Any]
) -> tuple[np.ndarray, ...]:
    """The random draws, one example after another in the reference's order.

    Returns the padded-then-dilated templates ``[n, length]``, and per example the scale, the
    shift, the correlated and the iid noise ``[n, length]`` and the shear.
    """
    # The templates: whitened, shifted to start (and end) at 0, scaled by 1/6.
    templates = np.array(_MNIST1D_TEMPLATES)
    templates = (templates - templates.mean(1, keepdims=True)) / templates.std(1, keepdims=True)
    templates = (templates - templates[:, :1]) / 6.0 + 1e-8  # +eps: the signal is never 0

    lo, hi = o["padding"]
    signals = np.empty((len(labels), length))
    scale = np.empty(len(labels))
    shift = np.empty(len(labels), np.int64)
    corr = np.empty((len(labels), length))
    iid = np.empty((len(labels), length))
    shear = np.empty(len(labels))
    grid = np.linspace(0, 1, length)
    for i, label in enumerate(labels):
        pad = lo + int(rng.rand() * (hi - lo + 1))
        padded = np.concatenate([templates[label], np.zeros(pad)])  # pad, then dilate:
        signals[i] = np.interp(grid, np.linspace(0, 1, len(padded)), padded)
        scale[i] = 1 + o["scale_coeff"] * (rng.rand() - 0.5)
        shift[i] = rng.choice(o["max_translation"])
        corr[i] = o["corr_noise_scale"] * rng.randn(length)
        iid[i] = o["iid_noise_scale"] * rng.randn(length)
        shear[i] = o["shear_scale"] * (rng.rand() - 0.5)
    return signals, scale, shift, corr, iid, shear
