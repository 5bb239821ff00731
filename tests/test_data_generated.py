"""Tests for gradlab.data.generated: MNIST-1D against the reference package, and the teacher."""

import numpy as np
import pytest

from gradlab import data


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
