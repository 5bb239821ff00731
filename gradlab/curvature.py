"""Curvature of the training loss: Hessian-vector products, sharpness, trace, gradient noise.

Every function takes a scalar ``loss_fn(params) -> scalar`` (``params`` any PyTree) and plain
arrays or PRNG keys. Iteration counts are static and there is no Python control flow on traced
values and no host callback, so each function runs under ``jax.jit`` and ``jax.vmap`` (the sweep
engine calls them inside ``jit(vmap(lax.scan(...)))`` with params, keys and starting vectors
batched). This module knows nothing of sweeps.

Costs are counted in Hessian-vector products (HVPs); one HVP costs about as much as two
gradient evaluations.

The file is longer than most in gradlab because its docstrings carry the numerical analysis
(Lanczos in floating point, the breakdown and ghost handling, the estimators' variance): about
two thirds of it is docstring, and its code is one idea, matrix-free curvature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]

__all__ = [
    "adam_preconditioner",
    "gradient_noise_scale",
    "gradient_snr",
    "hessian_trace",
    "hvp",
    "preconditioned_sharpness",
    "stability_threshold",
    "top_hessian_eigenvalue",
]

# Seed of the fixed random vector used as the fallback start and, cyclically shifted, as the
# restart after a Lanczos breakdown: deterministic, the same across a vmapped batch, and
# independent of the caller's keys.
_FALLBACK_SEED = 0
# A Lanczos step breaks down when the new residual is below this many machine epsilons relative
# to ‖Hv‖: the Krylov space is then invariant to working precision.
_BREAKDOWN_EPS = 100.0
# Two top Ritz values closer than this (relative to the largest |Ritz value|) are treated as one
# eigenvalue found twice ("ghost" copies, Lanczos without reorthogonalisation).
_GHOST_RTOL = 1e-4


def hvp(loss_fn: LossFn, params: PyTree, v: PyTree) -> PyTree:
    """Hessian-vector product ``H v`` of ``loss_fn`` at ``params``, by forward-over-reverse.

    .. math::

      H v = \\frac{d}{dt} \\nabla L(\\theta + t v) \\Big|_{t=0}
          = \\texttt{jvp}(\\nabla L, (\\theta,), (v,))

    The directional derivative of the gradient costs about two gradient evaluations and never
    forms ``H`` (Pearlmutter 1994).

    Args:
      loss_fn: scalar loss ``loss_fn(params) -> ()``.
      params: the point ``θ``, any PyTree of float arrays.
      v: the direction, a PyTree with the structure and shapes of ``params`` (its leaves are
        cast to the dtypes of ``params``).

    Returns:
      ``H v``, a PyTree like ``params``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradlab.curvature import hvp
      >>> loss = lambda x: 0.5 * x @ jnp.diag(jnp.array([1.0, 3.0])) @ x
      >>> hvp(loss, jnp.zeros(2), jnp.ones(2))
      Array([1., 3.], dtype=float32)

    References:
      Pearlmutter, `Fast exact multiplication by the Hessian
      <https://doi.org/10.1162/neco.1994.6.1.147>`_, 1994
    """
    v = jax.tree.map(lambda t, p: jnp.asarray(t, jnp.result_type(p)), v, params)
    return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def _work_dtype(dtype: jnp.dtype) -> jnp.dtype:
    """The dtype the Krylov vectors live in: at least float32, so bf16 params stay accurate."""
    return jnp.dtype(jnp.float32) if jnp.finfo(dtype).bits < 32 else jnp.dtype(dtype)


def _safe_normalise(x: jax.Array) -> jax.Array:
    norm = jnp.linalg.norm(x)
    return x / jnp.where(norm > 0, norm, 1)


def _fallback_vector(n: int, dtype: jnp.dtype) -> jax.Array:
    """A fixed unit random vector. Its cyclic shifts are linearly independent with probability
    one (a random circulant matrix is invertible), so they also serve as restart vectors."""
    return _safe_normalise(jax.random.normal(jax.random.PRNGKey(_FALLBACK_SEED), (n,), dtype))


def _lanczos_top(
    matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, num_iters: int
) -> tuple[jax.Array, jax.Array]:
    """Top Ritz pair of a symmetric operator after ``k = min(num_iters, n)`` Lanczos steps.

    Step ``j`` is the three-term recurrence, in the order Paige (1972) found the most stable
    (``β_{j-1} v_{j-1}`` is removed before ``α_j`` is measured):

    .. math::

      w_j = H v_j - \\beta_{j-1} v_{j-1},\\quad \\alpha_j = v_j^\\top w_j,\\quad
      w_j \\leftarrow w_j - \\alpha_j v_j,\\quad
      \\beta_j = \\lVert w_j \\rVert,\\quad v_{j+1} = w_j / \\beta_j .

    *Orthogonality.* When ``k < n`` the recurrence is all there is: each step writes ``v_j``
    into the basis (read once, at the end, for the Ritz vector) and never reads it back. In
    floating point the ``v_j`` then lose orthogonality, but only along Ritz vectors that have
    already converged (Paige 1980), and the only effect on ``T`` is extra copies ("ghosts") of
    converged Ritz values: every Ritz value stays within ``O(k ε ‖H‖)`` of ``[λ_min, λ_max]``,
    and the top one still converges to ``λ_max`` from below. That is all sharpness needs, and
    it is much cheaper: with thousands of runs vmapped, reorthogonalising against the ``k × n``
    basis reads it twice per step, which costs more than the HVPs themselves
    (benchmarks/README.md, item 6, has the timings and the accuracy against 40 completely
    reorthogonalised steps). On small MLPs with dense Hessians the top eigenvalue agrees with
    ``eigvalsh`` to 1e-6.

    When ``k = n`` (small problems, where ``n`` steps are meant to be exact) the basis is kept
    orthogonal instead: ``w_j`` goes through one classical Gram-Schmidt pass against
    ``V = [v_0 … v_j]`` before it is normalised (Golub & Van Loan, *Matrix Computations*,
    4th ed., §10.3.1), so ``T = VᵀHV`` to working precision and the ``n`` Ritz values are the
    spectrum.

    *Breakdown* (``‖w_j‖ ≤ 100 ε ‖H v_j‖``: the Krylov space is invariant, e.g. ``v_0`` is an
    eigenvector, or ``H v_j = 0`` or NaN): the next vector is a cyclic shift of a fixed random
    vector, with coupling ``β_j = 0``, so ``T`` becomes block diagonal and the next block is a
    Lanczos process of its own: its Ritz values are Rayleigh quotients too, and the remaining
    steps explore the rest of the space. With ``k = n`` the restart vector also goes through
    the Gram-Schmidt pass, so the blocks together still span the whole space.

    Returns ``(θ_max, u)``; both are NaN when any product was non-finite.

    References:
      Paige, `Computational variants of the Lanczos method for the eigenproblem
      <https://doi.org/10.1093/imamat/10.3.373>`_, 1972;
      Paige, `Accuracy and effectiveness of the Lanczos algorithm for the symmetric
      eigenproblem <https://doi.org/10.1016/0024-3795(80)90167-6>`_, 1980;
      Cullum & Willoughby, Lanczos Algorithms for Large Symmetric Eigenvalue Computations,
      vol. 1, 1985 (Lanczos without reorthogonalisation)
    """
    n = v0.shape[0]
    k = min(num_iters, n)  # more than n steps would exhaust the space; n steps are exact.
    reorthogonalise = k == n
    dtype = v0.dtype
    tol = _BREAKDOWN_EPS * jnp.finfo(dtype).eps

    v0_norm = jnp.linalg.norm(v0)
    usable = jnp.isfinite(v0_norm) & (v0_norm > 0)
    fallback = _fallback_vector(n, dtype)

    def step(j, carry):
        basis, alphas, betas, v, v_prev, beta_prev, finite = carry
        basis = basis.at[j].set(v)
        hv = matvec(v)
        hv_norm = jnp.linalg.norm(hv)
        w = hv - beta_prev * v_prev
        alpha = jnp.vdot(v, w)
        w = w - alpha * v
        breakdown = ~(jnp.linalg.norm(w) > tol * hv_norm)  # also true for H v = 0 and for NaN
        w = jnp.where(breakdown, jnp.roll(fallback, j + 1), w)
        if reorthogonalise:
            w = w - basis.T @ (basis @ w)  # rows j+1.. of the basis are still zero
        norm = jnp.linalg.norm(w)
        beta = jnp.where(breakdown, 0, norm)
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(beta)
        finite = finite & jnp.isfinite(alpha) & jnp.isfinite(hv_norm)
        return basis, alphas, betas, w / jnp.where(norm > 0, norm, 1), v, beta, finite

    start = jnp.where(usable, v0 / jnp.where(usable, v0_norm, 1), fallback)
    init = (
        jnp.zeros((k, n), dtype),  # basis
        jnp.zeros(k, dtype),  # alphas
        jnp.zeros(k, dtype),  # betas
        start,  # v
        jnp.zeros(n, dtype),  # v_prev
        jnp.zeros([], dtype),  # beta_prev
        jnp.array(True),  # finite
    )
    basis, alphas, betas, *_, finite = jax.lax.fori_loop(0, k, step, init)

    off = betas[:-1]
    tridiag = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    ritz_values, ritz_vectors = jnp.linalg.eigh(jnp.where(finite, tridiag, 0))
    if reorthogonalise or k == 1:
        u = _safe_normalise(basis.T @ ritz_vectors[:, -1])
    else:
        u = _top_ritz_vector(basis, ritz_values, ritz_vectors)
    nan = jnp.array(jnp.nan, dtype)
    return jnp.where(finite, ritz_values[-1], nan), jnp.where(finite, u, nan)


def _top_ritz_vector(
    basis: jax.Array, ritz_values: jax.Array, ritz_vectors: jax.Array
) -> jax.Array:
    """The top Ritz vector, robust to a ghost copy of the top Ritz value.

    Once ``θ_max`` has converged, Lanczos without reorthogonalisation can find it a second time
    (a "ghost"): ``T`` then has two Ritz values equal to working precision whose Ritz vectors
    ``y_1 = V s_1`` and ``y_2 = V s_2`` both approximate the same eigenvector ``u``. ``eigh``
    returns an arbitrary rotation of ``s_1, s_2``, and ``y_1 ≈ (a_1 c_1 + a_2 c_2) u`` can
    nearly cancel. A ghost pair is recognised by both signs: the top two Ritz values agree to
    ``1e-4`` (relative to the largest ``|θ|``) *and* ``y_1, y_2`` are nearly linearly dependent
    (``det G ≤ 0.01 (tr G)²`` for their Gram matrix ``G``; two genuine, orthonormal Ritz
    vectors give ``1/4``, so a close pair of distinct eigenvalues is never merged). The pair is
    then added in phase, ``y_1 + sign(⟨y_1, y_2⟩) y_2 ≈ ±(|c_1| + |c_2|) u``; otherwise the
    result is ``y_1``.
    """
    second, top = (basis.T @ ritz_vectors[:, -2:]).T  # one pass over the basis for both
    g11, g22, g12 = jnp.vdot(top, top), jnp.vdot(second, second), jnp.vdot(top, second)
    close = ritz_values[-1] - ritz_values[-2] <= _GHOST_RTOL * jnp.max(jnp.abs(ritz_values))
    dependent = g11 * g22 - g12**2 <= 0.01 * (g11 + g22) ** 2
    in_phase = top + jnp.where(g12 < 0, -1, 1) * second
    return _safe_normalise(jnp.where(close & dependent, in_phase, top))


def top_hessian_eigenvalue(
    loss_fn: LossFn,
    params: PyTree,
    v0: PyTree,
    *,
    num_iters: int = 20,
) -> tuple[jax.Array, PyTree]:
    """Sharpness: the largest (algebraic) Hessian eigenvalue ``λ_max`` and its eigenvector.

    Runs ``m = min(num_iters, n)`` steps of Lanczos on the flattened parameters (``n`` of them)
    from ``v0`` and returns the top Ritz pair of the ``m × m`` tridiagonal matrix ``T`` (via
    ``jnp.linalg.eigh``):

    .. math::

      V = [v_1, …, v_m],\\quad T = V^\\top H V,\\quad
      \\lambda_{\\max} \\approx \\theta_{\\max}(T) = \\max_{x \\in \\mathrm{span}\\,V}
        \\frac{x^\\top H x}{x^\\top x} \\le \\lambda_{\\max}(H).

    *Why Lanczos and not power iteration.* Power iteration converges to the eigenvalue of
    largest *magnitude*. Early in training and near saddles the most negative eigenvalue often
    dominates (``|λ_min| > λ_max``), and power iteration then reports ``λ_min``, a negative
    "sharpness" that is simply wrong. Lanczos approximates both ends of the spectrum at once and
    the top Ritz value ``θ_max`` is a Rayleigh quotient over the Krylov space, so it converges
    to the largest *algebraic* eigenvalue, from below and monotonically in ``num_iters``, at a
    rate set by the relative gap ``(λ_1 − λ_2)/(λ_2 − λ_n)`` (Chebyshev acceleration, much
    faster than power iteration's ``|λ_2/λ_1|^m``). With ``num_iters ≥ n`` it is exact. In
    floating point the Lanczos vectors lose orthogonality as Ritz values converge; for
    ``m < n`` that is left alone, because it only duplicates converged Ritz values and keeps
    every one within ``O(m ε ‖H‖)`` of the spectrum (Paige 1980), while reorthogonalising
    against the basis would cost more than the HVPs. For ``m = n`` the basis is kept
    orthogonal, so ``n`` steps stay exact (details in ``_lanczos_top``).

    Robustness, all branch-free:

    * a zero or non-finite ``v0`` falls back to a fixed random vector;
    * on breakdown (the Krylov space became invariant, ``β ≈ 0``, e.g. ``v0`` is an exact
      eigenvector) Lanczos restarts from a shift of that fixed random vector (orthogonalised
      against the basis when ``m = n``): no division by zero, and the remaining steps explore
      the rest of the space;
    * a non-finite Hessian (any non-finite HVP) gives NaN for the eigenvalue and the eigenvector,
      never a made-up number.

    Warm starts: pass the eigenvector returned at the previous measurement as ``v0``; when the
    top eigenvector changed little, a few iterations suffice.

    Cost: ``m`` HVPs, plus ``O(m n)`` flops and ``m × n`` floats of memory for the basis
    (``O(n³)`` flops when ``m = n``).

    Args:
      loss_fn: scalar loss ``loss_fn(params) -> ()``.
      params: where to measure, any PyTree of float arrays.
      v0: starting vector, a PyTree like ``params`` (need not be normalised): the eigenvector
        from the previous measurement, or anything else; zeros or non-finite values select a
        fixed random vector.
      num_iters: Lanczos steps (static), i.e. HVPs.

    Returns:
      ``(eigenvalue, eigenvector)``: the top Ritz value (scalar, at least float32) and the unit
      Ritz vector as a PyTree like ``params``, to pass back as ``v0`` next time.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradlab.curvature import top_hessian_eigenvalue
      >>> loss = lambda x: 0.5 * x @ jnp.diag(jnp.array([-5.0, 1.0, 2.0])) @ x
      >>> lam, vec = top_hessian_eigenvalue(loss, jnp.zeros(3), jnp.ones(3))
      >>> round(float(lam), 4)  # power iteration would report -5
      2.0

    References:
      Lanczos, `An iteration method for the solution of the eigenvalue problem of linear
      differential and integral operators <https://doi.org/10.6028/jres.045.026>`_, 1950;
      Golub & Van Loan, Matrix Computations, 4th ed., ch. 10;
      Cohen et al., `Gradient descent on neural networks typically occurs at the edge of
      stability <https://arxiv.org/abs/2103.00065>`_, 2021;
      Ghorbani et al., `An investigation into neural net optimization via Hessian eigenvalue
      density <https://arxiv.org/abs/1901.10159>`_, 2019
    """
    flat, unravel = ravel_pytree(params)
    dtype = _work_dtype(flat.dtype)

    def matvec(x: jax.Array) -> jax.Array:
        return ravel_pytree(hvp(loss_fn, params, unravel(x.astype(flat.dtype))))[0].astype(dtype)

    eigenvalue, u = _lanczos_top(matvec, ravel_pytree(v0)[0].astype(dtype), num_iters)
    return eigenvalue, unravel(u.astype(flat.dtype))


def preconditioned_sharpness(
    loss_fn: LossFn,
    params: PyTree,
    precond: PyTree,
    v0: PyTree,
    *,
    num_iters: int = 20,
) -> tuple[jax.Array, PyTree]:
    """Preconditioned sharpness ``λ_max(P⁻¹H)`` for a positive diagonal preconditioner ``P``.

    ``P⁻¹H`` is not symmetric, but it is similar to the symmetric ``P^{-1/2} H P^{-1/2}``:

    .. math::

      P^{-1} H = P^{-1/2} \\left(P^{-1/2} H P^{-1/2}\\right) P^{1/2},

    so both have the same (real) eigenvalues, and the top one is found by Lanczos on the
    symmetric operator ``v ↦ P^{-1/2} H (P^{-1/2} v)`` exactly as in
    :func:`top_hessian_eigenvalue` (same robustness, same cost: ``min(num_iters, n)`` HVPs).

    For an optimizer ``θ ← θ − η P⁻¹ m`` with a frozen ``P``, the quadratic model is stable iff
    this value is below :func:`stability_threshold`. For optax's ``adam`` (``θ ← θ − η m̂/(√ν̂ +
    ε)`` with bias-corrected moments) the matching preconditioner, with the ``1 − β₁ᵗ`` of
    ``m̂`` folded in so that ``m`` is the plain EMA of gradients (Cohen et al. 2022, §2), is

    .. math::

      P_t = (1 - \\beta_1^t)\\,\\mathrm{diag}\\!\\left(\\sqrt{\\nu_t / (1 - \\beta_2^t)} +
            \\epsilon\\right),

    which :func:`adam_preconditioner` computes from ``ScaleByAdamState.nu`` and ``.count``;
    compare the result with ``stability_threshold("adam", η, b1=β₁)`` (``38/η`` at 0.9).

    Args:
      loss_fn: scalar loss ``loss_fn(params) -> ()``.
      params: where to measure, any PyTree of float arrays.
      precond: the diagonal of ``P``, a PyTree like ``params`` with positive entries (a zero or
        negative entry gives NaN or ``inf``, not a silently clipped value).
      v0: starting vector for the *symmetric* problem (the eigenvector this function returned
        last time); zeros or non-finite values select a fixed random vector.
      num_iters: Lanczos steps (static), i.e. HVPs.

    Returns:
      ``(eigenvalue, eigenvector)``: ``λ_max(P⁻¹H)`` and the unit top eigenvector ``u`` of
      ``P^{-1/2} H P^{-1/2}`` as a PyTree like ``params`` (pass it back as ``v0``); the
      corresponding right eigenvector of ``P⁻¹H`` is ``P^{-1/2} u``.

    Example:
      >>> import jax.numpy as jnp
      >>> from gradlab.curvature import preconditioned_sharpness
      >>> loss = lambda x: 0.5 * x @ jnp.diag(jnp.array([4.0, 1.0])) @ x
      >>> precond = jnp.array([4.0, 0.5])
      >>> lam, _ = preconditioned_sharpness(loss, jnp.zeros(2), precond, jnp.ones(2))
      >>> round(float(lam), 4)
      2.0

    References:
      Cohen et al., `Adaptive gradient methods at the edge of stability
      <https://arxiv.org/abs/2207.14484>`_, 2022
    """
    flat, unravel = ravel_pytree(params)
    dtype = _work_dtype(flat.dtype)
    flat_precond = ravel_pytree(precond)[0].astype(dtype)
    scale = 1 / jnp.sqrt(flat_precond)  # P^{-1/2}

    def matvec(x: jax.Array) -> jax.Array:
        hx = hvp(loss_fn, params, unravel((scale * x).astype(flat.dtype)))
        return scale * ravel_pytree(hx)[0].astype(dtype)

    eigenvalue, u = _lanczos_top(matvec, ravel_pytree(v0)[0].astype(dtype), num_iters)
    return eigenvalue, unravel(u.astype(flat.dtype))


def adam_preconditioner(
    nu: PyTree,
    count: jax.Array | int,
    *,
    b1: float | jax.Array = 0.9,
    b2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-8,
    eps_root: float | jax.Array = 0.0,
) -> PyTree:
    """Diagonal preconditioner ``P`` of optax's Adam, in the form ``θ ← θ − η P⁻¹ m``.

    optax's ``adam`` updates ``θ ← θ − η m̂ / (√(ν̂ + ε_root) + ε)`` with ``m̂ = m/(1 − β₁ᵗ)`` and
    ``ν̂ = ν/(1 − β₂ᵗ)``, where ``m`` is the EMA ``m ← β₁ m + (1 − β₁) g``. Folding the first
    bias correction into ``P``:

    .. math::

      P_t = (1 - \\beta_1^t)\\left(\\sqrt{\\nu_t/(1 - \\beta_2^t) + \\epsilon_{root}} +
            \\epsilon\\right).

    With ``P`` frozen this is heavy-ball-like EMA momentum on ``P⁻¹H``, stable iff
    ``λ_max(P⁻¹H) < (2 + 2β₁)/(η(1 − β₁))`` (see :func:`stability_threshold`).

    Args:
      nu: second-moment EMA ``ν_t`` (``optax.ScaleByAdamState.nu``), a PyTree like params.
      count: number of updates taken, ``t ≥ 1`` (``optax.ScaleByAdamState.count``).
      b1: first-moment decay ``β₁``.
      b2: second-moment decay ``β₂``.
      eps: ``ε`` added outside the square root.
      eps_root: ``ε_root`` added inside the square root.

    Returns:
      ``P``'s diagonal, a PyTree like ``nu``, for :func:`preconditioned_sharpness`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gradlab.curvature import adam_preconditioner
      >>> params = jnp.ones(3)
      >>> opt = optax.adam(1e-2)
      >>> state = opt.init(params)
      >>> _, state = opt.update(jnp.array([1.0, 2.0, 3.0]), state)
      >>> adam_state = state[0]
      >>> p = adam_preconditioner(adam_state.nu, adam_state.count)  # ≈ 0.1 · |g|

    References:
      Kingma & Ba, `Adam: a method for stochastic optimization
      <https://arxiv.org/abs/1412.6980>`_, 2015;
      Cohen et al., `Adaptive gradient methods at the edge of stability
      <https://arxiv.org/abs/2207.14484>`_, 2022
    """

    def leaf(n: jax.Array) -> jax.Array:
        t = jnp.asarray(count).astype(n.dtype)
        nu_hat = n / (1 - b2**t)
        return (1 - b1**t) * (jnp.sqrt(nu_hat + eps_root) + eps)

    return jax.tree.map(leaf, nu)


def hessian_trace(
    loss_fn: LossFn, params: PyTree, key: jax.Array, *, num_probes: int = 10
) -> jax.Array:
    """Hutchinson estimate of the Hessian trace with Rademacher probes.

    .. math::

      \\widehat{\\mathrm{tr}\\,H} = \\frac{1}{m} \\sum_{k=1}^m z_k^\\top H z_k,\\qquad
      z_k \\in \\{\\pm 1\\}^n \\text{ i.i.d. uniform},

    unbiased because ``E[z zᵀ] = I``. Its variance is

    .. math::

      \\mathrm{Var} = \\frac{2}{m} \\sum_{i \\ne j} H_{ij}^2
        = \\frac{2}{m}\\left(\\lVert H \\rVert_F^2 - \\textstyle\\sum_i H_{ii}^2\\right),

    the smallest of any i.i.d. probe distribution; it is zero for a diagonal ``H`` (every probe
    gives the exact trace). The ``m`` HVPs are batched with ``vmap``.

    Args:
      loss_fn: scalar loss ``loss_fn(params) -> ()``.
      params: where to measure, any PyTree of float arrays.
      key: PRNG key for the probes.
      num_probes: number of probes ``m`` (static), i.e. HVPs.

    Returns:
      The scalar trace estimate (non-finite if the Hessian is not finite).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gradlab.curvature import hessian_trace
      >>> loss = lambda x: 0.5 * x @ jnp.diag(jnp.array([1.0, 2.0, 3.0])) @ x
      >>> float(hessian_trace(loss, jnp.zeros(3), jax.random.PRNGKey(0)))
      6.0

    References:
      Hutchinson, `A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines <https://doi.org/10.1080/03610919008812866>`_, 1990;
      Avron & Toledo, `Randomized algorithms for estimating the trace of an implicit symmetric
      positive semi-definite matrix <https://doi.org/10.1145/1944345.1944349>`_, 2011
    """
    flat, unravel = ravel_pytree(params)
    dtype = _work_dtype(flat.dtype)
    probes = jax.random.rademacher(key, (num_probes, flat.shape[0]), dtype=flat.dtype)

    def quadratic_form(z: jax.Array) -> jax.Array:
        hz = ravel_pytree(hvp(loss_fn, params, unravel(z)))[0]
        return jnp.vdot(z.astype(dtype), hz.astype(dtype))

    return jnp.mean(jax.vmap(quadratic_form)(probes))


def _per_example_matrix(per_example_grads: PyTree) -> jax.Array:
    """Stack per-example gradients into a ``(B, n)`` matrix (at least float32)."""
    leaves = jax.tree.leaves(per_example_grads)
    if not leaves:
        raise ValueError("per_example_grads has no leaves")
    batch = leaves[0].shape[0] if leaves[0].ndim else 0
    if any(leaf.ndim == 0 or leaf.shape[0] != batch for leaf in leaves):
        raise ValueError("every leaf of per_example_grads needs the same leading batch axis")
    if batch < 2:
        raise ValueError(f"need at least 2 per-example gradients for a variance, got {batch}")
    g = jax.vmap(lambda tree: ravel_pytree(tree)[0])(per_example_grads)
    return g.astype(_work_dtype(g.dtype))


def gradient_noise_scale(per_example_grads: PyTree) -> jax.Array:
    """Simple gradient noise scale ``B_simple = tr(Σ)/‖G‖²`` from per-example gradients.

    ``G`` is the true gradient and ``Σ`` the per-example gradient covariance. From the ``B``
    per-example gradients ``g_i`` (mean ``ḡ``) this uses the unbiased estimators

    .. math::

      \\widehat{\\mathrm{tr}\\,\\Sigma} = \\frac{1}{B-1} \\sum_i \\lVert g_i - \\bar g
        \\rVert^2,\\qquad
      \\widehat{\\lVert G \\rVert^2} = \\lVert \\bar g \\rVert^2 -
        \\frac{\\widehat{\\mathrm{tr}\\,\\Sigma}}{B},

    (``E‖ḡ‖² = ‖G‖² + tr Σ / B``), which are McCandlish et al.'s two-batch-size estimators
    (their App. A.1) with ``B_small = 1`` and ``B_big = B``. Their ratio is not itself unbiased,
    and when the signal is below the noise floor at this batch size the ``‖G‖²`` estimate can be
    near zero or negative, giving a huge or negative ``B_simple``: that is the measurement,
    reported as is. For a smooth curve, average numerator and denominator over steps before
    dividing (as McCandlish et al. do).

    Args:
      per_example_grads: PyTree whose leaves have a leading batch axis ``B ≥ 2``, e.g.
        ``jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, batch)``, where the training loss
        is the mean of the per-example losses.

    Returns:
      ``B_simple``, a scalar (at least float32).

    Example:
      >>> import jax.numpy as jnp
      >>> from gradlab.curvature import gradient_noise_scale
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 2.0]])}  # B = 2 examples, 2 params
      >>> round(float(gradient_noise_scale(g)), 4)  # tr Σ = 4, ‖G‖² = 5 - 4/2 = 3
      1.3333

    References:
      McCandlish et al., `An empirical model of large-batch training
      <https://arxiv.org/abs/1812.06162>`_, 2018
    """
    g = _per_example_matrix(per_example_grads)
    batch = g.shape[0]
    mean = jnp.mean(g, axis=0, keepdims=True)
    trace_cov = jnp.sum(jnp.square(g - mean)) / (batch - 1)
    grad_sq = jnp.sum(jnp.square(mean)) - trace_cov / batch
    return trace_cov / grad_sq


def gradient_snr(per_example_grads: PyTree) -> jax.Array:
    """Gradient signal-to-noise ratio (GSNR), averaged over parameters.

    For each scalar parameter ``j``, with per-example gradients ``g_{ij}`` over the batch:

    .. math::

      r_j = \\frac{\\bar g_j^2}{s_j^2},\\qquad
      \\bar g_j = \\frac{1}{B}\\sum_i g_{ij},\\qquad
      s_j^2 = \\frac{1}{B-1}\\sum_i (g_{ij} - \\bar g_j)^2,

    and the result is the plain arithmetic mean of ``r_j`` over every scalar parameter of every
    leaf (each scalar weighs the same, whatever its layer), skipping the parameters with
    ``s_j² = 0``, for which the GSNR is undefined (e.g. dead units whose gradient is zero for
    every example). If every parameter has zero variance the result is NaN; non-finite
    gradients give NaN. The plug-in ratio overestimates ``E[g]²/Var[g]`` by about ``1/B``.

    Args:
      per_example_grads: PyTree whose leaves have a leading batch axis ``B ≥ 2``.

    Returns:
      The mean GSNR, a scalar (at least float32).

    Example:
      >>> import jax.numpy as jnp
      >>> from gradlab.curvature import gradient_snr
      >>> g = {"w": jnp.array([[1.0, 0.0], [3.0, 2.0]])}
      >>> float(gradient_snr(g))  # (4/2 + 1/2) / 2
      1.25

    References:
      Liu et al., `Understanding why neural networks generalize well through GSNR of parameters
      <https://arxiv.org/abs/2001.07384>`_, ICLR 2020
    """
    g = _per_example_matrix(per_example_grads)
    mean = jnp.mean(g, axis=0)
    var = jnp.var(g, axis=0, ddof=1)
    defined = var != 0  # NaN variances stay in, so non-finite gradients give NaN
    ratio = jnp.square(mean) / jnp.where(defined, var, 1)
    return jnp.sum(jnp.where(defined, ratio, 0)) / jnp.sum(defined).astype(g.dtype)


def stability_threshold(
    optimizer: str,
    learning_rate: float | jax.Array,
    *,
    momentum: float | jax.Array = 0.9,
    b1: float | jax.Array = 0.9,
) -> jax.Array:
    """Edge-of-stability bound on the (preconditioned) sharpness for a given optimizer.

    On a quadratic with Hessian ``H``, each eigen-direction with eigenvalue ``λ`` evolves by a
    fixed linear recurrence that is stable iff ``λ`` is below:

    * ``"sgd"`` (``θ ← θ − η g``): :math:`2/\\eta`;
    * ``"momentum"`` (heavy ball, ``θ ← θ − η g + β(θ − θ_{prev})``, i.e. optax
      ``sgd(η, momentum=β)``): :math:`(2 + 2\\beta)/\\eta`;
    * ``"adam"`` with a frozen preconditioner (``θ ← θ − η P⁻¹ m``, ``m`` the EMA of
      gradients with ``β₁``; compare against :func:`preconditioned_sharpness` with
      :func:`adam_preconditioner`): :math:`(2 + 2\\beta_1)/(\\eta(1 - \\beta_1))`, ``38/η`` at
      ``β₁ = 0.9``.

    All arithmetic is on arrays, so ``learning_rate``, ``momentum`` and ``b1`` may be traced
    (vmapped over a grid); only ``optimizer`` is static.

    Args:
      optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
      learning_rate: step size ``η``.
      momentum: heavy-ball coefficient ``β`` (``"momentum"`` only).
      b1: Adam's first-moment decay ``β₁`` (``"adam"`` only).

    Returns:
      The threshold, an array shaped like ``learning_rate``.

    Raises:
      ValueError: unknown ``optimizer``.

    Example:
      >>> from gradlab.curvature import stability_threshold
      >>> round(float(stability_threshold("adam", 0.01)))
      3800

    References:
      Cohen et al., `Gradient descent on neural networks typically occurs at the edge of
      stability <https://arxiv.org/abs/2103.00065>`_, 2021;
      Cohen et al., `Adaptive gradient methods at the edge of stability
      <https://arxiv.org/abs/2207.14484>`_, 2022
    """
    lr = jnp.asarray(learning_rate)
    if optimizer == "sgd":
        return 2 / lr
    if optimizer == "momentum":
        return (2 + 2 * jnp.asarray(momentum)) / lr
    if optimizer == "adam":
        b1 = jnp.asarray(b1)
        return (2 + 2 * b1) / (lr * (1 - b1))
    raise ValueError(f"unknown optimizer {optimizer!r}; valid: 'adam', 'momentum', 'sgd'")
