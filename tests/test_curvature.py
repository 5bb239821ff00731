"""Tests for gradlab.curvature against independent computations.

References are dense ``jax.hessian`` + ``eigvalsh``/``numpy.linalg.eig``, hand-written loops in
numpy (power iteration, GD, heavy ball, frozen Adam), optax's own Adam, and numpy statistics on
explicit per-example gradients. The functions under test are jitted once at module level and
reused across tests with a few fixed shapes, so the file compiles little.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from gradlab import curvature as cv


@pytest.fixture(autouse=True)
def _strict_numpy():
    """Implicit dtype or rank promotion inside gradlab.curvature is a bug."""
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


# --------------------------------------------------------------------------- problems


def _symmetric(eigenvalues, seed: int) -> np.ndarray:
    """Symmetric float32 matrix with the given spectrum and a random orthonormal eigenbasis."""
    eigenvalues = np.asarray(eigenvalues, np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(eigenvalues.size,) * 2))
    return ((q * eigenvalues) @ q.T).astype(np.float32)


def _quadratic(a: jax.Array):
    return lambda x: 0.5 * x @ a @ x


_TRACES: list[int] = []  # one entry per trace of _top_quadratic


@functools.partial(jax.jit, static_argnames="num_iters")
def _top_quadratic(a, x, v0, num_iters=20):
    _TRACES.append(a.shape[-1])
    return cv.top_hessian_eigenvalue(_quadratic(a), x, v0, num_iters=num_iters)


@jax.jit
def _precond_quadratic(a, x, precond, v0):
    return cv.preconditioned_sharpness(_quadratic(a), x, precond, v0, num_iters=20)


@functools.partial(jax.jit, static_argnames="num_probes")
def _trace_quadratic(a, key, num_probes):
    return cv.hessian_trace(_quadratic(a), jnp.zeros(a.shape[-1]), key, num_probes=num_probes)


@jax.jit
def _dense_quadratic_hessian(a, x):
    """Dense Hessian of ½ xᵀAx by jax.hessian (independent of cv.hvp)."""
    return jax.hessian(_quadratic(a))(x)


def _mlp_loss(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    out = h @ p["w2"] + p["b2"][None, :]
    return 0.5 * jnp.mean(jnp.sum(jnp.square(out - y), axis=-1))


def _mlp_problem(seed: int = 0):
    """Tiny tanh MLP (3 -> 5 -> 2, 32 parameters as a dict) with an MSE loss on 16 examples."""
    k = jax.random.split(jax.random.PRNGKey(seed), 6)
    params = {
        "w1": jax.random.normal(k[0], (3, 5)),
        "b1": 0.1 * jax.random.normal(k[1], (5,)),
        "w2": jax.random.normal(k[2], (5, 2)) / jnp.sqrt(5.0),
        "b2": 0.1 * jax.random.normal(k[3], (2,)),
    }
    return params, jax.random.normal(k[4], (16, 3)), jax.random.normal(k[5], (16, 2))


@jax.jit
def _dense_mlp_hessian(params, x, y):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: _mlp_loss(unravel(f), x, y))(flat)


def _mlp_fn(fn, **kwargs):
    """``fn(loss_fn, params, *rest)`` jitted over the MLP data."""
    return jax.jit(lambda p, x, y, *rest: fn(lambda q: _mlp_loss(q, x, y), p, *rest, **kwargs))


_mlp_top = _mlp_fn(cv.top_hessian_eigenvalue)


def _flat(tree) -> np.ndarray:
    return np.asarray(ravel_pytree(tree)[0], np.float64)


def _random_like(params, seed: int):
    flat, unravel = ravel_pytree(params)
    return unravel(jax.random.normal(jax.random.PRNGKey(seed), flat.shape, flat.dtype))


# Quadratic configurations run through the eigenvalue tests: (name, spectrum, seed).
# n = 40 with the default 20 Lanczos steps, or n = 5 (< 20 steps: the Krylov space is exhausted).
_rng = np.random.default_rng(1)
QUADRATICS = [
    ("psd", np.r_[5.0, 3.5, _rng.uniform(0.01, 3.0, 38)], 0),
    # |λ_min| = 10 > λ_max = 3: power iteration reports -10.
    ("negative_dominant", np.r_[3.0, 2.0, -10.0, _rng.uniform(-9.0, 2.0, 37)], 1),
    ("negative_definite", np.r_[-1.0, -1.5, _rng.uniform(-8.0, -2.0, 38)], 2),
    ("exhausted_space", np.array([4.0, -1.0, 0.5, 0.0, -2.0]), 3),
]
NEGATIVE_DOMINANT = _symmetric(QUADRATICS[1][1], QUADRATICS[1][2])
_PRECOND = jnp.asarray(np.exp(np.random.default_rng(2).uniform(-2.0, 2.0, 40)), jnp.float32)


# --------------------------------------------------------------------------- hvp


def test_hvp_matches_dense_hessian_on_pytree():
    params, x, y = _mlp_problem()
    v = _random_like(params, 1)
    got = jax.jit(lambda p, v: cv.hvp(lambda q: _mlp_loss(q, x, y), p, v))(params, v)
    want = np.asarray(_dense_mlp_hessian(params, x, y), np.float64) @ _flat(v)
    assert jax.tree.structure(got) == jax.tree.structure(params)
    np.testing.assert_allclose(_flat(got), want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- sharpness


@pytest.mark.parametrize(("name", "spectrum", "seed"), QUADRATICS, ids=[c[0] for c in QUADRATICS])
def test_top_eigenvalue_quadratic(name, spectrum, seed):
    a = _symmetric(spectrum, seed)
    n = a.shape[0]
    x = jnp.linspace(-1.0, 1.0, n)
    hessian = np.asarray(_dense_quadratic_hessian(a, x), np.float64)
    evals, evecs = np.linalg.eigh(hessian)
    scale = np.abs(evals).max()

    lam, vec = _top_quadratic(a, x, jax.random.normal(jax.random.PRNGKey(seed), (n,)))

    np.testing.assert_allclose(lam, evals[-1], rtol=1e-4, atol=1e-4 * scale)
    vec = np.asarray(vec, np.float64)
    np.testing.assert_allclose(np.linalg.norm(vec), 1.0, rtol=1e-5)
    assert abs(vec @ evecs[:, -1]) > 1 - 1e-4
    assert np.linalg.norm(hessian @ vec - evals[-1] * vec) < 1e-3 * scale


def test_power_iteration_would_report_the_wrong_end():
    """On the negative-dominant quadratic plain power iteration converges to λ_min, not λ_max."""
    a = np.asarray(NEGATIVE_DOMINANT, np.float64)
    v = np.random.default_rng(0).normal(size=a.shape[0])
    for _ in range(300):
        v = a @ v
        v /= np.linalg.norm(v)
    power = v @ a @ v
    np.testing.assert_allclose(power, -10.0, rtol=1e-3)  # the wrong answer

    lam, _ = _top_quadratic(NEGATIVE_DOMINANT, jnp.zeros(40), jnp.asarray(v, jnp.float32))
    np.testing.assert_allclose(lam, 3.0, rtol=1e-4)  # λ_max, even started at λ_min's vector


def test_top_eigenvalue_mlp_pytree():
    params, x, y = _mlp_problem()
    evals, evecs = np.linalg.eigh(np.asarray(_dense_mlp_hessian(params, x, y), np.float64))
    lam, vec = _mlp_top(params, x, y, _random_like(params, 2))
    assert jax.tree.structure(vec) == jax.tree.structure(params)
    np.testing.assert_allclose(lam, evals[-1], rtol=1e-4)
    assert abs(_flat(vec) @ evecs[:, -1]) > 1 - 1e-4


def test_warm_start_converges_in_few_iterations():
    a = NEGATIVE_DOMINANT
    x = jnp.zeros(40)
    true_vec = jnp.asarray(np.linalg.eigh(np.asarray(a, np.float64))[1][:, -1], jnp.float32)

    # From the exact eigenvector (the first step breaks down; no NaN).
    lam, vec = _top_quadratic(a, x, true_vec, num_iters=4)
    np.testing.assert_allclose(lam, 3.0, rtol=1e-5)
    assert abs(vec @ true_vec) > 1 - 1e-5

    # From a slightly stale eigenvector 4 HVPs suffice; a cold start with 4 does much worse.
    noise = jax.random.normal(jax.random.PRNGKey(5), (40,))
    stale = true_vec + 0.05 * noise / jnp.linalg.norm(noise)
    warm, _ = _top_quadratic(a, x, stale, num_iters=4)
    cold, _ = _top_quadratic(a, x, noise, num_iters=4)
    np.testing.assert_allclose(warm, 3.0, rtol=1e-4)
    assert abs(cold - 3.0) > 100 * abs(warm - 3.0)


@pytest.mark.parametrize("start", [0.0, np.nan, np.inf])
def test_degenerate_start_vector_falls_back(start):
    v0 = jnp.full(40, start, jnp.float32)
    lam, vec = _top_quadratic(NEGATIVE_DOMINANT, jnp.ones(40), v0)
    np.testing.assert_allclose(lam, 3.0, rtol=1e-4)
    np.testing.assert_allclose(jnp.linalg.norm(vec), 1.0, rtol=1e-5)


@pytest.mark.parametrize("start_index", [0, 4])
def test_breakdown_at_an_exact_eigenvector(start_index):
    """v0 = e_i of a diagonal Hessian: the Krylov space is invariant after one step."""
    a = -jnp.diag(jnp.arange(1.0, 6.0))  # λ_max = -1 at e_0, λ_min = -5 at e_4
    lam, vec = _top_quadratic(a, jnp.ones(5), jnp.eye(5)[start_index])
    np.testing.assert_allclose(lam, -1.0, rtol=1e-5)  # not 0 from padding, not NaN
    np.testing.assert_allclose(jnp.abs(vec), jnp.eye(5)[0], atol=1e-4)


def test_repeated_breakdowns_stay_within_the_spectrum():
    """Two distinct eigenvalues, each of multiplicity 3: every Krylov space closes after at most
    two steps, so six steps need three restarts. With as many steps as dimensions the basis is
    kept orthogonal, restarts included (else T is not VᵀHV and padding or overlap could report
    a value above λ_max)."""
    a = -jnp.diag(jnp.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0]))
    for start in (jnp.eye(6)[3], jnp.ones(6)):
        lam, vec = _top_quadratic(a, jnp.ones(6), start, num_iters=6)
        np.testing.assert_allclose(lam, -1.0, rtol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(vec[3:]), 0.0, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ghost_copies_of_the_top_eigenvalue_keep_the_eigenvector(seed):
    """One isolated eigenvalue (50 over a bulk in [-1, 1]) converges within a few steps; 60
    steps without reorthogonalisation then find it again ("ghosts"). The eigenvalue stays
    exact and the returned vector is still its eigenvector."""
    n = 200
    spectrum = np.r_[50.0, np.random.default_rng(seed).uniform(-1.0, 1.0, n - 1)]
    a = _symmetric(spectrum, seed)
    v0 = jax.random.normal(jax.random.PRNGKey(seed), (n,))
    lam, vec = _top_quadratic(a, jnp.zeros(n), v0, num_iters=60)
    vec = np.asarray(vec, np.float64)
    np.testing.assert_allclose(lam, 50.0, rtol=1e-5)
    assert np.linalg.norm(np.asarray(a, np.float64) @ vec - 50.0 * vec) < 1e-3 * 50.0


def test_ghost_ritz_vectors_are_added_in_phase():
    """Two Lanczos vectors that are copies of the same eigenvector u (orthogonality fully lost)
    and a top Ritz value found twice: ``eigh`` may return any rotation of the pair, here the one
    whose Ritz vector V s_1 = (u - u)/√2 cancels. The result must still be ±u."""
    u = jnp.array([0.6, 0.8, 0.0])
    basis = jnp.stack([u, u])
    ritz_values = jnp.array([5.0, 5.0])
    ritz_vectors = jnp.array([[1.0, 1.0], [1.0, -1.0]]) / jnp.sqrt(2.0)  # columns: s_2, s_1
    got = cv._top_ritz_vector(basis, ritz_values, ritz_vectors)
    np.testing.assert_allclose(jnp.abs(got), jnp.abs(u), atol=1e-6)
    # A distinct second eigenvalue is not a ghost: the top Ritz vector is V s_1 alone, also
    # when the two are close next to a large |λ_min| (orthonormal Ritz vectors, not copies).
    basis = jnp.eye(3)
    for values in ([-100.0, 1.0, 5.0], [-100.0, 0.009, 0.01]):
        got = cv._top_ritz_vector(basis, jnp.array(values), jnp.eye(3))
        np.testing.assert_allclose(got, jnp.eye(3)[2], atol=1e-6)


def test_zero_hessian_is_zero_not_nan():
    lam, vec = _top_quadratic(jnp.zeros((5, 5)), jnp.ones(5), jnp.ones(5))
    assert lam == 0.0
    np.testing.assert_allclose(jnp.linalg.norm(vec), 1.0, rtol=1e-6)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_non_finite_hessian_gives_nan(bad):
    a = jnp.eye(40).at[1, 2].set(bad).at[2, 1].set(bad)
    lam, vec = _top_quadratic(a, jnp.ones(40), jnp.ones(40))
    assert jnp.isnan(lam) and jnp.all(jnp.isnan(vec))
    lam, vec = _precond_quadratic(a, jnp.ones(40), _PRECOND, jnp.ones(40))
    assert jnp.isnan(lam) and jnp.all(jnp.isnan(vec))
    assert not jnp.isfinite(_trace_quadratic(a, jax.random.PRNGKey(0), 1))


def test_non_finite_params_give_nan():
    params, x, y = _mlp_problem()
    params["w1"] = params["w1"].at[0, 0].set(jnp.nan)
    lam, vec = _mlp_top(params, x, y, _random_like(params, 2))
    assert jnp.isnan(lam) and np.all(np.isnan(_flat(vec)))


def test_jit_vmap_scan_with_warm_start_matches_per_item():
    """The sweep engine's pattern: jit(vmap(lax.scan)), the eigenvector carried by the scan."""
    configs = [*QUADRATICS[:3], ("negative_dominant_2", QUADRATICS[1][1], 5)]
    a = jnp.stack([_symmetric(spectrum, seed) for _, spectrum, seed in configs])
    x0 = jax.random.normal(jax.random.PRNGKey(0), (4, 40))
    v0 = jax.random.normal(jax.random.PRNGKey(1), (4, 40))
    lr, steps = 0.01, 3

    def run(a, x, v):
        def step(carry, _):
            x, v = carry
            lam, v = cv.top_hessian_eigenvalue(_quadratic(a), x, v)
            return (x - lr * a @ x, v), lam

        return jax.lax.scan(step, (x, v), length=steps)[1]

    batched = jax.jit(jax.vmap(run))(a, x0, v0)
    assert batched.shape == (4, steps)
    for i in range(4):
        x, v = x0[i], v0[i]
        want = np.linalg.eigvalsh(np.asarray(a[i], np.float64))[-1]
        for t in range(steps):
            lam, v = _top_quadratic(a[i], x, v)
            x = x - lr * a[i] @ x
            np.testing.assert_allclose(batched[i, t], lam, rtol=1e-5)
            np.testing.assert_allclose(lam, want, rtol=1e-4)


def test_jit_does_not_recompile_for_new_values():
    a = _symmetric(QUADRATICS[0][1], seed=7)
    _top_quadratic(a, jnp.zeros(40), jnp.ones(40))
    traces = len(_TRACES)
    for seed in range(3):
        a = _symmetric(QUADRATICS[1][1] * (seed + 1), seed=seed)
        _top_quadratic(a, jnp.full(40, seed, jnp.float32), jnp.arange(40, dtype=jnp.float32))
    assert len(_TRACES) == traces


# --------------------------------------------------------------------------- preconditioned


def test_preconditioned_sharpness_quadratic_matches_dense():
    hessian = np.asarray(_dense_quadratic_hessian(NEGATIVE_DOMINANT, jnp.zeros(40)), np.float64)
    evals = np.linalg.eigvals(hessian / np.asarray(_PRECOND, np.float64)[:, None])  # P⁻¹H
    assert np.allclose(evals.imag, 0.0)
    lam, vec = _precond_quadratic(NEGATIVE_DOMINANT, jnp.zeros(40), _PRECOND, jnp.ones(40))
    np.testing.assert_allclose(lam, evals.real.max(), rtol=1e-4)
    # P^{-1/2} u is a right eigenvector of P⁻¹H.
    right = np.asarray(vec / jnp.sqrt(_PRECOND), np.float64)
    residual = hessian @ right / np.asarray(_PRECOND, np.float64) - float(lam) * right
    assert np.linalg.norm(residual) < 1e-3 * np.abs(evals).max() * np.linalg.norm(right)


def test_adam_preconditioner_reproduces_optax_adam_update():
    """optax.adam's update equals −η P⁻¹ m with P = adam_preconditioner(ν, t), m = state.mu."""
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-3
    opt = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    grad_fn = jax.grad(lambda p: jnp.sum(p["w"] ** 4) + p["b"] ** 2)

    @jax.jit
    def step(params, state):
        with jax.numpy_dtype_promotion("standard"):  # optax itself is not strict-clean
            updates, state = opt.update(grad_fn(params), state)
        adam = state[0]
        precond = cv.adam_preconditioner(adam.nu, adam.count, b1=b1, b2=b2, eps=eps)
        want = jax.tree.map(lambda m, p: -lr * m / p, adam.mu, precond)
        return optax.apply_updates(params, updates), state, updates, want

    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
    state = opt.init(params)
    for _ in range(4):
        params, state, updates, want = step(params, state)
        np.testing.assert_allclose(_flat(updates), _flat(want), rtol=1e-5)


# --------------------------------------------------------------------------- trace


def test_hutchinson_exact_for_diagonal_hessian():
    a = jnp.diag(jnp.linspace(-3.0, 7.0, 40))
    for seed in range(3):
        est = _trace_quadratic(a, jax.random.PRNGKey(seed), 1)
        np.testing.assert_allclose(est, jnp.trace(a), rtol=1e-5, atol=1e-4)


def test_hutchinson_unbiased_with_documented_variance():
    hessian = np.asarray(_dense_quadratic_hessian(NEGATIVE_DOMINANT, jnp.zeros(40)), np.float64)
    variance = 2 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2))  # of one probe
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    samples = np.asarray(
        jax.jit(jax.vmap(_trace_quadratic, in_axes=(None, 0, None)), static_argnums=2)(
            NEGATIVE_DOMINANT, keys, 1
        ),
        np.float64,
    )
    np.testing.assert_allclose(samples.var(), variance, rtol=0.15)
    assert abs(samples.mean() - np.trace(hessian)) < 4 * np.sqrt(variance / samples.size)


def test_hutchinson_mlp_pytree():
    params, x, y = _mlp_problem(seed=1)
    hessian = np.asarray(_dense_mlp_hessian(params, x, y), np.float64)
    std_err = np.sqrt(2 * (np.sum(hessian**2) - np.sum(np.diag(hessian) ** 2)) / 2000)
    est = _mlp_fn(cv.hessian_trace, num_probes=2000)(params, x, y, jax.random.PRNGKey(2))
    assert abs(est - np.trace(hessian)) < 4 * std_err


# --------------------------------------------------------------------------- stability


def _diverges(x_final: np.ndarray, x0: np.ndarray) -> bool:
    return not np.all(np.isfinite(x_final)) or np.linalg.norm(x_final) > 10 * np.linalg.norm(x0)


def _gd(a, x0, lr, steps=300):
    x = x0.copy()
    for _ in range(steps):
        x = x - lr * a @ x
    return x


def _heavy_ball(a, x0, lr, beta, steps=300):
    x, prev = x0.copy(), x0.copy()
    for _ in range(steps):
        x, prev = x - lr * a @ x + beta * (x - prev), x
    return x


def _frozen_adam(a, x0, lr, b1, precond, steps=300):
    x, m = x0.copy(), np.zeros_like(x0)
    for _ in range(steps):
        m = b1 * m + (1 - b1) * a @ x
        x = x - lr * m / precond
    return x


_PSD = _symmetric(QUADRATICS[0][1], seed=11)
_X0 = np.random.default_rng(0).normal(size=40)


@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_gd_diverges_iff_sharpness_exceeds_2_over_lr(factor):
    lam = float(_top_quadratic(_PSD, jnp.zeros(40), jnp.ones(40))[0])
    lr = factor * 2 / lam
    threshold = float(cv.stability_threshold("sgd", lr))
    np.testing.assert_allclose(threshold, 2 / lr, rtol=1e-6)
    diverged = _diverges(_gd(np.asarray(_PSD, np.float64), _X0, lr), _X0)
    assert diverged == (lam > threshold) == (factor > 1)


@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_heavy_ball_diverges_iff_sharpness_exceeds_threshold(factor):
    beta = 0.9
    lam = float(_top_quadratic(_PSD, jnp.zeros(40), jnp.ones(40))[0])
    lr = factor * (2 + 2 * beta) / lam
    threshold = float(cv.stability_threshold("momentum", lr, momentum=beta))
    np.testing.assert_allclose(threshold, (2 + 2 * beta) / lr, rtol=1e-6)
    diverged = _diverges(_heavy_ball(np.asarray(_PSD, np.float64), _X0, lr, beta), _X0)
    assert diverged == (lam > threshold) == (factor > 1)


@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_frozen_adam_diverges_iff_preconditioned_sharpness_exceeds_threshold(factor):
    b1 = 0.9
    lam = float(_precond_quadratic(_PSD, jnp.zeros(40), _PRECOND, jnp.ones(40))[0])
    lr = factor * 38 / lam
    threshold = float(cv.stability_threshold("adam", lr, b1=b1))
    np.testing.assert_allclose(threshold, 38 / lr, rtol=1e-5)
    precond = np.asarray(_PRECOND, np.float64)
    diverged = _diverges(_frozen_adam(np.asarray(_PSD, np.float64), _X0, lr, b1, precond), _X0)
    assert diverged == (lam > threshold) == (factor > 1)


def test_stability_threshold_traced_and_validated():
    lrs = jnp.array([0.1, 0.5, 2.0])
    betas = jnp.array([0.0, 0.5, 0.9])
    momentum = jax.jit(jax.vmap(lambda lr, b: cv.stability_threshold("momentum", lr, momentum=b)))
    np.testing.assert_allclose(momentum(lrs, betas), (2 + 2 * betas) / lrs, rtol=1e-6)
    adam = jax.jit(jax.vmap(lambda lr, b: cv.stability_threshold("adam", lr, b1=b)))
    np.testing.assert_allclose(adam(lrs, jnp.full(3, 0.9)), 38 / lrs, rtol=1e-5)
    with pytest.raises(ValueError, match="rmsprop"):
        cv.stability_threshold("rmsprop", 0.1)


# --------------------------------------------------------------------------- per-example


_noise_scale = jax.jit(cv.gradient_noise_scale)
_snr = jax.jit(cv.gradient_snr)


def _per_example(seed: int, batch: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": (rng.normal(size=(batch, 3, 2)) + 0.7).astype(np.float32),
        "b": (rng.normal(size=(batch, 4)) * 0.5 - 0.2).astype(np.float32),
    }


def _numpy_matrix(grads: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([g.reshape(g.shape[0], -1) for g in grads.values()], 1).astype(float)


def test_gradient_noise_scale_matches_numpy():
    grads = _per_example(seed=0)
    g = _numpy_matrix(grads)
    batch = g.shape[0]
    trace_cov = np.sum(np.var(g, axis=0, ddof=1))
    grad_sq = np.sum(g.mean(axis=0) ** 2) - trace_cov / batch
    got = _noise_scale(grads)
    np.testing.assert_allclose(got, trace_cov / grad_sq, rtol=1e-5)
    # McCandlish et al. App. A.1 with B_small = 1, B_big = B gives the same estimators.
    small, big = np.mean(np.sum(g**2, axis=1)), np.sum(g.mean(axis=0) ** 2)
    mccandlish = (small - big) / (1 - 1 / batch) / ((batch * big - small) / (batch - 1))
    np.testing.assert_allclose(got, mccandlish, rtol=1e-5)


def test_gradient_snr_matches_numpy_and_skips_zero_variance():
    grads = _per_example(seed=1)
    g = _numpy_matrix(grads)
    want = np.mean(g.mean(axis=0) ** 2 / g.var(axis=0, ddof=1))
    np.testing.assert_allclose(_snr(grads), want, rtol=1e-5)
    # A parameter with zero variance has no GSNR: it is skipped, and alone it gives NaN.
    dead = {"a": np.zeros_like(grads["a"]), "b": grads["b"]}
    g = _numpy_matrix({"b": grads["b"]})
    want = np.mean(g.mean(axis=0) ** 2 / g.var(axis=0, ddof=1))
    np.testing.assert_allclose(_snr(dead), want, rtol=1e-5)
    assert jnp.isnan(_snr({"a": dead["a"], "b": np.zeros_like(grads["b"])}))


def test_per_example_statistics_propagate_nan():
    grads = _per_example(seed=2)
    grads["a"][3, 0, 0] = np.nan
    assert jnp.isnan(_snr(grads))
    assert jnp.isnan(_noise_scale(grads))


def test_per_example_statistics_need_a_batch():
    with pytest.raises(ValueError, match="at least 2"):
        cv.gradient_snr({"w": jnp.ones((1, 3))})
    with pytest.raises(ValueError, match="leading batch axis"):
        cv.gradient_noise_scale({"w": jnp.ones((4, 3)), "b": jnp.ones((5,))})
