"""Mean-field theory against literature values, closed forms and independent computations.

Independent references: published critical points, closed forms (ReLU, linear, the arc-cosine
kernel), Monte-Carlo and adaptive (scipy) integration with NumPy activations, finite differences,
hand-written iteration loops and an explicit wide random network in NumPy.
"""

from __future__ import annotations

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from gradlab import theory
from gradlab.activations import get_activation

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# φ and φ' written in NumPy, independently of gradlab.activations and jax.grad.
NUMPY_ACTIVATIONS = {
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: np.where(x > 0, 1.0, 0.0)),
    "elu": (
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))),
    ),
    "selu": (
        lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
        lambda x: _SELU_SCALE * np.where(x > 0, 1.0, _SELU_ALPHA * np.exp(np.minimum(x, 0.0))),
    ),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sigmoid),
    "sigmoid": (_sigmoid, lambda x: _sigmoid(x) * (1.0 - _sigmoid(x))),
}


def _gaussian_mean(f, q: float) -> float:
    """E[f(√q z)] by adaptive quadrature on each half-line."""
    density = lambda z: f(math.sqrt(q) * z) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    halves = [(-np.inf, 0.0), (0.0, np.inf)]
    return sum(integrate.quad(density, a, b, epsabs=1e-13, epsrel=1e-12)[0] for a, b in halves)


def _arccos_kernel(c: float) -> float:
    """E[relu(u1) relu(u2)] / E[relu(u)²] for unit Gaussians with correlation c (Cho & Saul)."""
    return (math.sqrt(1.0 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


# --------------------------------------------------------------------------- literature values


def test_tanh_critical_point_matches_literature():
    # Poole et al. 2016 / Schoenholz et al. 2017: tanh, σ_b² = 0.05 is critical at σ_w² ≈ 1.76.
    assert theory.critical_sigma_w2("tanh", 0.05) == pytest.approx(1.761, abs=1e-2)


def test_tanh_without_bias_is_critical_at_one():
    assert theory.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("sigma_b2", [0.0, 0.05, 1.0])
def test_homogeneous_critical_points_are_closed_form(sigma_b2):
    assert theory.critical_sigma_w2("relu", sigma_b2) == 2.0  # He initialisation
    assert theory.critical_sigma_w2("linear", sigma_b2) == 1.0
    assert theory.critical_sigma_w2("leaky_relu", sigma_b2) == pytest.approx(2.0 / 1.0001)
    # The same ReLU, not recognised by identity, goes through q* and bisection.
    relu = lambda x: jax.nn.relu(x)
    assert theory.critical_sigma_w2(relu, sigma_b2) == pytest.approx(2.0, rel=1e-8)


@pytest.mark.parametrize("relu", ["relu", lambda x: jnp.maximum(x, 0.0)], ids=["name", "callable"])
@pytest.mark.parametrize(
    ("sigma_w2", "sigma_b2"), [(1.0, 0.0), (1.5, 0.3), (2.0, 0.0), (2.0, 0.5), (3.0, 0.1)]
)
def test_relu_chi1_is_half_sigma_w2(relu, sigma_w2, sigma_b2):
    # q* = 0, finite, preserved and infinite all give χ1 = σ_w²/2.
    assert theory.chi1(relu, sigma_w2, sigma_b2) == pytest.approx(sigma_w2 / 2, rel=1e-12)


@pytest.mark.parametrize("linear", ["linear", lambda x: x], ids=["name", "callable"])
@pytest.mark.parametrize("sigma_w2", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("sigma_b2", [0.1, 1.0])
def test_linear_q_star_is_closed_form(linear, sigma_w2, sigma_b2):
    expected = sigma_b2 / (1.0 - sigma_w2)
    assert theory.q_star(linear, sigma_w2, sigma_b2) == pytest.approx(expected, rel=1e-10)
    assert theory.chi1(linear, sigma_w2, sigma_b2) == pytest.approx(sigma_w2, rel=1e-12)


@pytest.mark.parametrize("sigma_b2", [0.05, 0.3])
def test_tanh_chi1_is_below_one_when_ordered_and_above_when_chaotic(sigma_b2):
    critical = theory.critical_sigma_w2("tanh", sigma_b2)
    assert theory.chi1("tanh", 0.8 * critical, sigma_b2) < 1.0
    assert theory.chi1("tanh", critical, sigma_b2) == pytest.approx(1.0, abs=1e-8)
    assert theory.chi1("tanh", 1.25 * critical, sigma_b2) > 1.0


# --------------------------------------------------------------------------- integrals


@pytest.mark.parametrize("name", sorted(NUMPY_ACTIVATIONS))
@pytest.mark.parametrize("q", [0.5, 4.0])
def test_length_map_matches_monte_carlo(name, q):
    phi, _ = NUMPY_ACTIVATIONS[name]
    z = np.random.default_rng(0).standard_normal(1_000_000)
    expected = 1.3 * np.mean(phi(math.sqrt(q) * z) ** 2) + 0.2
    assert theory.q_map(name, q, 1.3, 0.2) == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("name", sorted(NUMPY_ACTIVATIONS))
def test_length_map_and_chi1_match_adaptive_quadrature(name):
    phi, dphi = NUMPY_ACTIVATIONS[name]
    sigma_w2, sigma_b2 = 1.7, 0.1
    for q in (0.3, 2.0, 9.0):
        expected = sigma_w2 * _gaussian_mean(lambda u: phi(u) ** 2, q) + sigma_b2
        assert theory.q_map(name, q, sigma_w2, sigma_b2) == pytest.approx(expected, rel=1e-10)
    q_star = theory.q_star(name, sigma_w2, sigma_b2)
    expected = sigma_w2 * _gaussian_mean(lambda u: dphi(u) ** 2, q_star)
    assert theory.chi1(name, sigma_w2, sigma_b2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", ["tanh", "softplus", "gelu", "swish", "elu", "selu", "relu"])
def test_chi1_is_the_slope_of_the_correlation_map_at_one(name):
    sigma_w2, sigma_b2, h = 1.7, 0.1, 1e-6
    slope = (1.0 - theory.c_map(name, 1.0 - h, sigma_w2, sigma_b2)) / h
    assert theory.c_map(name, 1.0, sigma_w2, sigma_b2) == pytest.approx(1.0, abs=1e-12)
    assert slope == pytest.approx(theory.chi1(name, sigma_w2, sigma_b2), rel=5e-4)


@pytest.mark.parametrize("c", [-0.9, -0.3, 0.0, 0.5, 0.9, 0.999])
def test_relu_correlation_map_is_the_arccos_kernel(c):
    sigma_w2, sigma_b2 = 1.5, 0.2
    q = sigma_b2 / (1.0 - sigma_w2 / 2)  # q* in closed form
    expected = (sigma_w2 * q / 2 * _arccos_kernel(c) + sigma_b2) / (sigma_w2 * q / 2 + sigma_b2)
    assert theory.c_map("relu", c, sigma_w2, sigma_b2) == pytest.approx(expected, abs=1e-10)


# --------------------------------------------------------------------------- fixed points


@pytest.mark.parametrize(
    ("name", "sigma_w2", "sigma_b2"),
    [("tanh", 2.5, 0.05), ("tanh", 1.5, 0.0), ("softplus", 1.5, 0.1), ("sigmoid", 4.0, 0.1),
     ("selu", 1.0, 0.0), ("gelu", 1.5, 0.5)],
)  # fmt: skip
def test_q_star_is_the_limit_of_iterating_the_length_map(name, sigma_w2, sigma_b2):
    q = 1.0
    for _ in range(1000):
        q = theory.q_map(name, q, sigma_w2, sigma_b2)
    assert theory.q_star(name, sigma_w2, sigma_b2) == pytest.approx(q, rel=1e-9)


@pytest.mark.parametrize("generic", [False, True], ids=["name", "callable"])
@pytest.mark.parametrize(
    ("name", "sigma_w2", "sigma_b2", "q0", "expected"),
    [
        ("tanh", 0.5, 0.0, 1.0, 0.0),  # ordered, no bias: lengths vanish
        ("tanh", 1.0, 0.0, 1.0, 0.0),  # critical: vanish as 1/(2l)
        ("relu", 1.5, 0.0, 1.0, 0.0),
        ("relu", 1.5, 0.1, 1.0, 0.4),  # σ_b² / (1 - σ_w²/2)
        ("relu", 2.0, 0.0, 3.0, 3.0),  # every length is preserved: q* = q0
        ("relu", 2.0, 0.1, 1.0, math.inf),  # grows by σ_b² per layer
        ("relu", 2.5, 0.0, 1.0, math.inf),
        ("linear", 1.0, 0.0, 2.0, 2.0),
        ("linear", 1.5, 0.1, 1.0, math.inf),
    ],
)
def test_q_star_degenerate_cases(generic, name, sigma_w2, sigma_b2, q0, expected):
    fn = get_activation(name)
    activation = (lambda x: fn(x)) if generic else name
    result = theory.q_star(activation, sigma_w2, sigma_b2, q0=q0)
    assert result == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_c_star_ordered_is_one_and_chaotic_is_the_limit_of_iteration():
    assert theory.c_star("tanh", 1.0, 0.05) == 1.0
    assert theory.c_star("relu", 2.5, 0.1) == 1.0  # q* = ∞: deep ReLU nets align inputs
    c, q = 0.1, theory.q_star("tanh", 2.5, 0.05)
    for _ in range(300):  # converges as exp(-l / ξ_c), ξ_c ≈ 12
        c = theory.c_map("tanh", c, 2.5, 0.05, q=q)
    assert theory.c_star("tanh", 2.5, 0.05) == pytest.approx(c, abs=1e-9)
    assert theory.c_star("tanh", 2.5, 0.0) == pytest.approx(0.0, abs=1e-12)  # odd φ, no bias


# --------------------------------------------------------------------------- depth scales


def test_xi_c_diverges_at_the_edge_of_chaos():
    critical = theory.critical_sigma_w2("tanh", 0.05)
    for sigma_w2 in (critical * (1 - 1e-3), critical * (1 + 1e-3)):
        assert theory.depth_scales("tanh", sigma_w2, 0.05)[1] > 200
    for sigma_w2 in (1.0, 4.0):
        assert theory.depth_scales("tanh", sigma_w2, 0.05)[1] < 10
    assert theory.depth_scales("relu", 2.0, 0.0) == (math.inf, math.inf)


@pytest.mark.parametrize("generic", [False, True], ids=["name", "callable"])
@pytest.mark.parametrize(("name", "sigma_w2"), [("relu", 1.5), ("relu", 3.0), ("tanh", 0.5)])
def test_depth_scales_without_bias(generic, name, sigma_w2):
    # q* = 0 or ∞: lengths vanish (ξ_q from the slope σ_w² φ'(0⁺)²) or explode (ξ_q = inf), and
    # the correlation map, normalised by the layer's length, has slope 1 at c = 1 (ξ_c = inf).
    fn = get_activation(name)
    rate = sigma_w2 * (0.5 if name == "relu" else 1.0)
    xi_q, xi_c = theory.depth_scales((lambda x: fn(x)) if generic else name, sigma_w2, 0.0)
    assert xi_q == pytest.approx(-1 / math.log(rate) if rate < 1 else math.inf, rel=1e-9)
    assert xi_c == math.inf


@pytest.mark.parametrize(
    ("name", "sigma_w2", "sigma_b2"), [("tanh", 1.0, 0.05), ("tanh", 2.5, 0.05), ("elu", 1.2, 0.2)]
)
def test_depth_scales_are_the_decay_rates_of_the_linearised_maps(name, sigma_w2, sigma_b2):
    xi_q, xi_c = theory.depth_scales(name, sigma_w2, sigma_b2)
    q, c, h = theory.q_star(name, sigma_w2, sigma_b2), theory.c_star(name, sigma_w2, sigma_b2), 1e-5
    q_map = lambda x: theory.q_map(name, x, sigma_w2, sigma_b2)
    q_slope = (q_map(q + h) - q_map(q - h)) / (2 * h)
    c_map = lambda x: theory.c_map(name, x, sigma_w2, sigma_b2)
    c_slope = (c_map(c) - c_map(c - h)) / h if c == 1.0 else (c_map(c + h) - c_map(c - h)) / (2 * h)
    assert xi_q == pytest.approx(-1 / math.log(q_slope), rel=1e-6)
    assert xi_c == pytest.approx(-1 / math.log(c_slope), rel=1e-4)


# --------------------------------------------------------------------------- a real network


@pytest.fixture(scope="module")
def wide_tanh_network():
    """A random tanh network in NumPy (σ_w² = 2.5, σ_b² = 0.05): its pre-activations for 16 input
    pairs of correlations from -0.9 to 0.99, and the per-layer gains of a backward signal."""
    width, depth, sigma_w2, sigma_b2 = 1000, 20, 2.5, 0.05
    rng = np.random.default_rng(0)
    weights = [
        rng.standard_normal((width, width), dtype=np.float32) * math.sqrt(sigma_w2 / width)
        for _ in range(depth)
    ]
    a, noise = rng.standard_normal((2, width, 16))
    c0 = np.linspace(-0.9, 0.99, 16)
    h = [np.concatenate([a, c0 * a + np.sqrt(1 - c0**2) * noise], axis=1)]  # unit lengths
    for w in weights:
        h.append(w @ np.tanh(h[-1]) + math.sqrt(sigma_b2) * rng.standard_normal((width, 1)))
    delta = rng.standard_normal((width, 32))  # ∂loss/∂h at the top: any random direction
    gains = []
    for layer in reversed(range(1, depth)):  # δ^l = φ'(h^l) ⊙ W^{l+1}ᵀ δ^{l+1}
        new = (1.0 - np.tanh(h[layer]) ** 2) * (weights[layer].T @ delta)
        gains.append(np.sum(new**2) / np.sum(delta**2))
        delta = new
    return h, np.array(gains[::-1])


def test_q_star_matches_a_wide_random_network(wide_tanh_network):
    h, _ = wide_tanh_network
    measured = np.mean([np.mean(x**2) for x in h[5:]])
    assert theory.q_star("tanh", 2.5, 0.05) == pytest.approx(measured, rel=3e-2)


def test_chi1_is_the_backward_gain_of_a_wide_random_network(wide_tanh_network):
    _, gains = wide_tanh_network
    measured = np.exp(np.mean(np.log(gains[4:])))
    assert theory.chi1("tanh", 2.5, 0.05) == pytest.approx(measured, rel=3e-2)


def _pair_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 0) / np.sqrt(np.sum(a * a, 0) * np.sum(b * b, 0))


def test_correlation_map_matches_a_wide_random_network(wide_tanh_network):
    h, _ = wide_tanh_network
    corr = [_pair_correlations(x[:, :16], x[:, 16:]) for x in h]
    q = theory.q_star("tanh", 2.5, 0.05)
    residuals = [  # one layer of the map, from layers whose lengths have reached q*
        theory.c_map("tanh", c, 2.5, 0.05, q=q) - measured
        for layer in (4, 7, 10, 13)
        for c, measured in zip(corr[layer], corr[layer + 1], strict=True)
    ]
    assert np.mean(residuals) == pytest.approx(0.0, abs=0.01)  # no bias
    assert np.sqrt(np.mean(np.square(residuals))) < 0.05  # finite-width noise: about 0.03


# --------------------------------------------------------------------------- API contract


def test_scalars_give_floats_and_arrays_broadcast():
    assert type(theory.chi1("tanh", 2.0, 0.05)) is float
    assert type(theory.q_star("tanh", 2.0, 0.05)) is float
    sigma_w2, sigma_b2 = np.array([[1.0], [2.0], [3.0]]), np.array([0.0, 0.1])
    grid = theory.chi1("tanh", sigma_w2, sigma_b2)
    assert isinstance(grid, np.ndarray) and grid.shape == (3, 2)
    assert grid[2, 1] == theory.chi1("tanh", 3.0, 0.1)
    xi_q, xi_c = theory.depth_scales("tanh", [1.0, 2.0], 0.05)
    assert xi_q.shape == xi_c.shape == (2,)
    assert theory.q_map("relu", np.array([1.0, 4.0]), 2.0, 0.0).tolist() == pytest.approx([1, 4])


def test_order_chaos_line():
    sigma_b2 = [0.0, 0.05, 0.5]
    line = theory.order_chaos_line("tanh", sigma_b2)
    assert isinstance(line, np.ndarray) and line.shape == (3,)
    assert np.all(np.diff(line) > 0)  # more bias needs larger weights to become chaotic
    assert line[1] == theory.critical_sigma_w2("tanh", 0.05)
    np.testing.assert_array_equal(theory.order_chaos_line("relu", sigma_b2), 2.0)


def test_user_callable_matches_named_activation():
    tanh = lambda x: jnp.tanh(x)
    assert theory.q_star(tanh, 2.5, 0.05) == theory.q_star("tanh", 2.5, 0.05)
    assert theory.chi1(tanh, 2.5, 0.05) == theory.chi1("tanh", 2.5, 0.05)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="unknown activation"):
        theory.chi1("tahn", 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_w2"):
        theory.q_star("tanh", -1.0, 0.0)
    with pytest.raises(ValueError, match="correlation"):
        theory.c_map("tanh", 1.5, 1.0, 0.0)
    with pytest.raises(ValueError, match="q0"):
        theory.q_star("tanh", 1.0, 0.0, q0=0.0)


def test_docstring_examples():
    assert doctest.testmod(theory, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0
