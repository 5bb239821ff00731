"""The fractal trainability boundary (Sohl-Dickstein 2024): its data set, the box-counting
dimension against sets of known dimension, the zoom helper and the figures.

The mean-field parametrization itself is tested in ``tests/test_parametrization.py`` against
the paper's reference notebook.
"""

from __future__ import annotations

import numpy as np
import pytest

import gradlab as gl


# -- the data set ---------------------------------------------------------------------------------
def test_gaussian_data_are_independent_standard_normals():
    data = gl.data.load("gaussian", seed=5, n_train=20_000, n_test=10, input_dim=3, output_dim=2)
    assert data.num_classes is None
    assert data.x_train.shape == (20_000, 3) and data.y_train.shape == (20_000, 2)
    assert data.x_test.shape == (10, 3) and data.y_test.shape == (10, 2)
    z = np.concatenate([data.x_train, data.y_train], axis=1).astype(np.float64)
    # N(0, I_5): means within 4 standard errors of 0, the covariance within 0.05 of I.
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(len(z)))
    np.testing.assert_allclose(np.cov(z.T), np.eye(5), atol=0.05)
    # The first examples do not depend on how many are asked for; the seed changes them.
    few = gl.data.load("gaussian", seed=5, n_train=7, input_dim=3, output_dim=2)
    np.testing.assert_array_equal(few.x_train, data.x_train[:7])
    np.testing.assert_array_equal(few.y_train, data.y_train[:7])
    other = gl.data.load("gaussian", seed=6, n_train=7, input_dim=3, output_dim=2)
    assert not np.array_equal(other.x_train, few.x_train)


def test_gaussian_defaults_are_the_papers_setup():
    data = gl.data.load("gaussian")
    # 16 inputs, one target, as many examples as the parameters of 16 -> 16 -> 1 without biases
    assert data.x_train.shape == (16 * 16 + 16, 16) and data.y_train.shape == (272, 1)
    assert data.x_test.shape == (0, 16)


@pytest.mark.parametrize("option", [{"input_dim": 0}, {"output_dim": 1.5}, {"width": 3}])
def test_gaussian_bad_options_name_the_field(option):
    name = next(iter(option))
    with pytest.raises(gl.ConfigError, match=name):
        gl.data.load("gaussian", **option)
