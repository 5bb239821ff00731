"""Mean-field signal propagation through deep random networks.

A fully connected network with weights ``W ~ N(0, σ_w²/fan_in)`` and biases ``b ~ N(0, σ_b²)``
is, at infinite width, described layer by layer by a few one- and two-dimensional Gaussian
integrals (Poole et al. 2016, Schoenholz et al. 2017): the length map ``q``, the correlation map
``c``, their fixed points ``q*`` and ``c*``, the gradient factor ``χ1`` and the depth scales.
These are the predictions gradlab's measured signals (``act_rms_layer``, ``delta_rms_layer``)
are compared with.

The file is longer than most in gradlab because every public function's docstring carries its
integral, its references and a worked example (half the file); the code is one idea.

Conventions:

* Arguments are variances: ``sigma_w2 = σ_w²`` and ``sigma_b2 = σ_b²``.
* ``activation`` is a name from :data:`gradlab.activations.ACTIVATIONS` or any elementwise JAX
  function; its derivatives come from :func:`jax.grad`.
* Gaussian expectations use Gauss-Legendre quadrature on each side of the activation's
  argument crossing 0 (64 nodes per side, on ``|z| <= 10``; pairs ``(u1, u2)`` split at
  ``u1 = 0`` and, given ``u1``, at ``u2 = 0``). The integrand is then smooth on every piece even
  for ReLU, ELU or SELU, whose kinks are at 0, and the integrals are accurate to about 1e-12
  for variances ``q`` up to about 30 (a Gauss-Hermite rule over the whole line converges only
  algebraically on a kink). Beyond that, features of width ``1/√q`` such as tanh's derivative
  are resolved less well (tanh at ``q = 100``: 1e-6).
  Positively homogeneous activations (ReLU, leaky ReLU, linear) use their closed forms.
* Numerical arguments may be Python floats (the result is a ``float``) or arrays, which broadcast
  against each other (the result is a ``numpy.ndarray``). All arithmetic is float64.
* A fixed point ``q* = 0`` or ``q* = ∞`` is reported as such; quantities evaluated "at q*" then
  take the limit ``q → 0⁺`` or ``q → ∞`` (read at ``q = 1e-100`` or ``q = 1e100``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from numpy.typing import ArrayLike

from gradlab.activations import ACTIVATIONS, Activation, get_activation

__all__ = [
    "c_map",
    "c_star",
    "chi1",
    "critical_sigma_w2",
    "depth_scales",
    "order_chaos_line",
    "q_map",
    "q_star",
]

_LEGENDRE = np.polynomial.legendre.leggauss(64)
_Z_MAX = 10.0  # N(0, 1) puts 1.5e-23 of its mass beyond ±10
_TINY, _HUGE = 1e-100, 1e100  # where q = 0 and q = ∞ are read as limits
_HOMOGENEOUS = ("relu", "leaky_relu", "linear")  # φ(λx) = λφ(x) for λ > 0: χ1 needs no q*
_MAX_SIGMA_W2 = 1e6  # critical_sigma_w2 searches (0, _MAX_SIGMA_W2]

_ScalarFn = Callable[..., Any]


# ----------------------------------------------------------------------------- numerics


@functools.lru_cache(maxsize=64)
def _derivatives(fn: Activation) -> tuple[Callable[[jax.Array], jax.Array], ...]:
    """``(φ, φ', φ'')``, each compiled to map a 1-D array elementwise."""
    d1 = jax.grad(fn)
    return tuple(jax.jit(jax.vmap(f)) for f in (fn, d1, jax.grad(d1)))


def _apply(f: Callable[[jax.Array], jax.Array], x: np.ndarray) -> np.ndarray:
    """``f`` applied elementwise to a float64 array, in float64."""
    with jax.enable_x64(True):
        return np.asarray(f(np.ravel(x))).reshape(np.shape(x))


def _normal_rule(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for ``∫ f(z) N(z; 0, 1) dz`` over each ``[lo, hi]`` (Gauss-Legendre)."""
    nodes, weights = _LEGENDRE
    half = 0.5 * (hi - lo)[..., None]
    z = 0.5 * (hi + lo)[..., None] + half * nodes
    return z, half * weights * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _split_rule(kink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rule for ``E_z[f(z)]`` whose pieces meet at ``kink`` (one rule per entry of ``kink``)."""
    kink = np.clip(kink, -_Z_MAX, _Z_MAX)
    below = _normal_rule(np.full_like(kink, -_Z_MAX), kink)
    above = _normal_rule(kink, np.full_like(kink, _Z_MAX))
    return np.concatenate([below[0], above[0]], -1), np.concatenate([below[1], above[1]], -1)


_Z, _P = _split_rule(np.array(0.0))


def _gauss(f: Callable, g: Callable, q: float, c: float = 1.0) -> float:
    """``E[f(u1) g(u2)]`` for ``u1, u2 ~ N(0, q)`` with correlation ``c``.

    Gauss-Legendre on each side of ``u1 = 0`` and of ``u2 = 0`` (given ``u1``), where the
    activations' kinks are, so the integrand is smooth on every piece.
    """
    u1 = math.sqrt(q) * _Z
    f1 = _apply(f, u1)
    if c == 1.0:
        return float(_P @ (f1 * (f1 if g is f else _apply(g, u1))))
    s = math.sqrt(1.0 - c * c)
    with np.errstate(divide="ignore"):
        z2, p2 = _split_rule(-c * _Z / s)  # u2 = √q (c z1 + s z2) changes sign at z2 = -c z1 / s
    inner = np.sum(p2 * _apply(g, math.sqrt(q) * (c * _Z[:, None] + s * z2)), axis=1)
    return float(_P @ (f1 * inner))


def _limit(q: float) -> float:
    """``q``, with 0 and ∞ replaced by values where their limits are reached."""
    return min(max(q, _TINY), _HUGE)


def _bisect(
    holds: Callable[[float], bool],
    a: float,
    b: float,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    geometric: bool = False,
) -> float:
    """The boundary between ``a`` (where ``holds`` is true) and ``b`` (where it is false)."""
    while abs(a - b) > atol + rtol * max(abs(a), abs(b)):
        mid = math.sqrt(a * b) if geometric else 0.5 * (a + b)
        if mid in (a, b):
            break
        a, b = (mid, b) if holds(mid) else (a, mid)
    return 0.5 * (a + b)


def _depth_scale(rate: float) -> float:
    """The depth ``-1 / ln(rate)`` over which a deviation scaled by ``rate`` per layer decays."""
    if rate >= 1.0:
        return math.inf
    return 0.0 if rate <= 0.0 else -1.0 / math.log(rate)


def _broadcast(
    scalar_fn: _ScalarFn, activation: str | Activation, *args: ArrayLike, **kw: Any
) -> Any:
    """``scalar_fn(φ, *floats, **kw)`` on floats, or broadcast over array arguments."""
    fn = get_activation(activation)
    if all(np.ndim(x) == 0 for x in args):
        return scalar_fn(fn, *(float(x) for x in args), **kw)
    return np.vectorize(lambda *xs: scalar_fn(fn, *(float(x) for x in xs), **kw))(*args)


def _check_nonnegative(**values: ArrayLike) -> None:
    for name, value in values.items():
        if not np.all(np.asarray(value, dtype=float) >= 0):
            raise ValueError(f"{name} must be a non-negative variance, got {value}")


# ----------------------------------------------------------------------------- scalar kernels


@functools.lru_cache(maxsize=64)
def _homogeneous_gain(fn: Activation) -> float | None:
    """``E[φ'(z)²]`` when φ is positively homogeneous (φ' constant on each half-line), else None."""
    if not any(fn is ACTIVATIONS[name] for name in _HOMOGENEOUS):
        return None
    slopes = _apply(_derivatives(fn)[1], np.array([-1.0, 1.0]))
    return float(np.mean(slopes**2))


def _q_map(fn: Activation, q: float, w: float, b: float) -> float:
    phi = _derivatives(fn)[0]
    return w * _gauss(phi, phi, q) + b


def _q_star(fn: Activation, w: float, b: float, q0: float = 1.0, rtol: float = 1e-12) -> float:
    # q_map is increasing in q, so the iterates from q0 move monotonically to the nearest fixed
    # point in the direction of the first step (or to 0 or ∞); bracket it, then bisect.
    if not q0 > 0:
        raise ValueError(f"q0 must be positive, got {q0}")
    gain = _homogeneous_gain(fn)
    if gain is not None:  # q_map(q) = σ_w² E[φ'(z)²] q + σ_b² is affine
        slope = w * gain
        if slope < 1.0:
            return b / (1.0 - slope)
        return q0 if slope == 1.0 and b == 0.0 else math.inf

    def growth(q: float) -> float:
        return _q_map(fn, q, w, b) - q

    step = growth(q0)
    if abs(step) <= rtol * q0:
        return q0
    if step > 0:
        lo, hi = q0, 10.0 * q0
        while not growth(hi) < -rtol * hi:  # growing, up to rounding (NaN: overflow)
            if hi > _HUGE:
                return math.inf
            lo, hi = hi, 10.0 * hi
        return _bisect(lambda q: growth(q) > 0, lo, hi, rtol=rtol, geometric=True)
    hi, lo = q0, _q_map(fn, 0.0, w, b)  # q_map(q) >= q_map(0): no fixed point below q_map(0)
    if lo == 0.0:  # 0 is a fixed point; look for a positive one on the way down
        lo = 0.1 * q0
        while growth(lo) < 0:
            if lo < rtol * q0:
                return 0.0
            hi, lo = lo, 0.1 * lo
    return _bisect(lambda q: growth(q) < 0, hi, lo, rtol=rtol, geometric=True)


def _chi(fn: Activation, w: float, q: float, c: float = 1.0) -> float:
    d1 = _derivatives(fn)[1]
    return w * _gauss(d1, d1, _limit(q), c)


def _chi1(fn: Activation, w: float, b: float) -> float:
    gain = _homogeneous_gain(fn)
    return w * gain if gain is not None else _chi(fn, w, _q_star(fn, w, b))


def _c_map(fn: Activation, c: float, w: float, b: float, q: float | None = None) -> float:
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"a correlation must lie in [-1, 1], got {c}")
    q = _limit(_q_star(fn, w, b) if q is None else q)
    phi = _derivatives(fn)[0]
    return (w * _gauss(phi, phi, q, c) + b) / _q_map(fn, q, w, b)


def _c_star(fn: Activation, w: float, b: float, q: float | None = None) -> float:
    q = _q_star(fn, w, b) if q is None else q
    if not 0.0 < q < math.inf or _chi(fn, w, q) <= 1.0:
        return 1.0  # c = 1 is stable (ordered phase, criticality, or q* at 0 or ∞)

    def drift(c: float) -> float:  # >= 0 at c = 0, and < 0 just below the unstable c = 1
        return _c_map(fn, c, w, b, q) - c

    below = 0.0
    for k in range(1, 53):
        c = 1.0 - 2.0**-k
        if drift(c) < 0:
            return _bisect(lambda x: drift(x) >= 0, below, c, atol=1e-14)
        below = c
    return 1.0


def _depth_scales(fn: Activation, w: float, b: float) -> tuple[float, float]:
    # Where q* is 0 or ∞ the correlation map (normalised by the next layer's length) has slope 1
    # at c* = 1: correlations do not converge geometrically.
    gain = _homogeneous_gain(fn)
    if gain is not None:  # an affine length map of slope χ1, c* = 1; q* is 0, q0 or ∞ unless b > 0
        xi = _depth_scale(w * gain)
        return xi, xi if b > 0 else math.inf
    q = _q_star(fn, w, b)
    phi, d1, d2 = _derivatives(fn)
    length_slope = w * (_gauss(d1, d1, _limit(q)) + _gauss(phi, d2, _limit(q)))
    if not 0.0 < q < math.inf:
        return _depth_scale(length_slope), math.inf
    return _depth_scale(length_slope), _depth_scale(_chi(fn, w, q, _c_star(fn, w, b, q)))


def _critical_sigma_w2(fn: Activation, b: float) -> float:
    gain = _homogeneous_gain(fn)
    if gain is not None:
        return 1.0 / gain
    lo, hi = 0.0, 1.0
    while _chi1(fn, hi, b) < 1.0:
        if hi >= _MAX_SIGMA_W2:
            raise ValueError(f"chi1 < 1 for every sigma_w2 <= {_MAX_SIGMA_W2:g}: no transition")
        lo, hi = hi, 2.0 * hi
    return _bisect(lambda w: _chi1(fn, w, b) < 1.0, lo, hi, rtol=1e-10)


# ----------------------------------------------------------------------------- public API


def q_map(
    activation: str | Activation, q: ArrayLike, sigma_w2: ArrayLike, sigma_b2: ArrayLike
) -> float | np.ndarray:
    r"""The length map: the pre-activation variance of a layer given that of the layer below.

    .. math::

      q^{l} = \sigma_w^2 \, \mathbb{E}_{z \sim N(0, 1)}
              \big[\phi(\sqrt{q^{l-1}} z)^2\big] + \sigma_b^2

    Args:
      activation: an activation name (see :data:`gradlab.activations.ACTIVATIONS`) or an
        elementwise JAX function.
      q: the pre-activation variance ``q^{l-1}`` of the layer below (>= 0).
      sigma_w2: the weight variance ``σ_w²`` (weights ``N(0, σ_w²/fan_in)``).
      sigma_b2: the bias variance ``σ_b²``.

    Returns:
      ``q^l``: a float, or an array when any numerical argument is one (they broadcast).

    Example:
      >>> from gradlab import theory
      >>> round(theory.q_map("relu", 3.0, 2.0, 0.1), 12)  # ReLU halves the second moment
      3.1

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340
    """
    _check_nonnegative(q=q, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return _broadcast(_q_map, activation, q, sigma_w2, sigma_b2)


def q_star(
    activation: str | Activation,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    *,
    q0: float = 1.0,
    rtol: float = 1e-12,
) -> float | np.ndarray:
    r"""The fixed point of the length map reached from input length ``q0``.

    .. math::

      q^* = \lim_{l \to \infty} q^l, \qquad
      q^* = \sigma_w^2 \, \mathbb{E}_z\big[\phi(\sqrt{q^*} z)^2\big] + \sigma_b^2

    The length map is increasing in ``q``, so its iterates move monotonically to the nearest
    fixed point in the direction of their first step; it is bracketed and found by bisection,
    which is exact even where the iteration converges only as a power of depth. Degenerate cases
    follow the iteration:

    * ``0`` when the lengths shrink to zero (``σ_b² = 0`` and tanh with ``σ_w² <= 1``, ReLU with
      ``σ_w² < 2``);
    * ``q0`` itself when every length is a fixed point (ReLU with ``σ_w² = 2``, linear with
      ``σ_w² = 1``: the length is preserved, so depends on the input);
    * ``inf`` when the lengths grow without bound (ReLU with ``σ_w² > 2``, or ``σ_w² = 2`` and
      ``σ_b² > 0``, where ``q`` grows by ``σ_b²`` per layer; linear with ``σ_w² > 1``).

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_w2: the weight variance ``σ_w²``.
      sigma_b2: the bias variance ``σ_b²``.
      q0: the input length ``q^0`` (> 0) the iteration starts from.
      rtol: relative tolerance on ``q*``; a fixed point below ``rtol * q0`` counts as 0.

    Returns:
      ``q*`` (possibly ``0.0`` or ``inf``): a float, or an array for array arguments.

    Example:
      >>> from gradlab import theory
      >>> round(theory.q_star("tanh", 2.5, 0.05), 4)
      1.064
      >>> theory.q_star("relu", 2.0, 0.0, q0=3.0), theory.q_star("relu", 2.5, 0.0)
      (3.0, inf)

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340
    """
    _check_nonnegative(sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return _broadcast(_q_star, activation, sigma_w2, sigma_b2, q0=q0, rtol=rtol)


def chi1(
    activation: str | Activation, sigma_w2: ArrayLike, sigma_b2: ArrayLike
) -> float | np.ndarray:
    r"""The per-layer gain of the backward signal at the length fixed point.

    .. math::

      \chi_1 = \sigma_w^2 \, \mathbb{E}_z\big[\phi'(\sqrt{q^*} z)^2\big]
              = \frac{\mathbb{E}\,\lVert \delta^{l} \rVert^2}
                      {\mathbb{E}\,\lVert \delta^{l+1} \rVert^2}
              = \frac{\partial c^{l+1}}{\partial c^{l}} \Big|_{c = 1}

    ``χ1 < 1``: ordered phase, gradients vanish with depth; ``χ1 > 1``: chaotic phase, they
    explode; ``χ1 = 1``: the edge of chaos. For positively homogeneous activations (ReLU, leaky
    ReLU, linear) ``χ1 = σ_w² E[φ'(z)²]`` whatever ``q*`` (ReLU: ``σ_w²/2``; linear: ``σ_w²``).

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_w2: the weight variance ``σ_w²``.
      sigma_b2: the bias variance ``σ_b²``.

    Returns:
      ``χ1``: a float, or an array for array arguments.

    Example:
      >>> from gradlab import theory
      >>> theory.chi1("relu", 2.0, 0.1)  # He initialisation is critical
      1.0
      >>> round(theory.chi1("tanh", 1.0, 0.05), 4), round(theory.chi1("tanh", 3.0, 0.05), 4)
      (0.759, 1.2089)

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340

      Schoenholz et al., 2017: https://arxiv.org/abs/1611.01232
    """
    _check_nonnegative(sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return _broadcast(_chi1, activation, sigma_w2, sigma_b2)


def c_map(
    activation: str | Activation,
    c: ArrayLike,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    *,
    q: float | None = None,
) -> float | np.ndarray:
    r"""The correlation map: the correlation of two inputs' pre-activations one layer up.

    .. math::

      c^{l} = \frac{\sigma_w^2 \, \mathbb{E}[\phi(u_1)\phi(u_2)] + \sigma_b^2}{q^{l}},
      \quad u_1 = \sqrt{q} z_1, \;
      u_2 = \sqrt{q}\big(c^{l-1} z_1 + \sqrt{1 - (c^{l-1})^2} z_2\big)

    with ``z1, z2 ~ N(0, 1)`` independent, both inputs at length ``q`` and ``q^l = q_map(q)``
    (``= q*`` at the fixed point). ``c = 1`` is always a fixed point, with slope ``χ1`` when
    ``q = q*``.

    Args:
      activation: an activation name or an elementwise JAX function.
      c: the correlation ``c^{l-1}`` in ``[-1, 1]``.
      sigma_w2: the weight variance ``σ_w²``.
      sigma_b2: the bias variance ``σ_b²``.
      q: the common length of the two inputs; ``None`` (default) uses ``q*``.

    Returns:
      ``c^l``: a float, or an array for array arguments.

    Example:
      >>> from gradlab import theory
      >>> round(theory.c_map("tanh", 0.5, 2.5, 0.05), 4)
      0.4959

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340
    """
    _check_nonnegative(sigma_w2=sigma_w2, sigma_b2=sigma_b2, q=0.0 if q is None else q)
    return _broadcast(_c_map, activation, c, sigma_w2, sigma_b2, q=q)


def c_star(
    activation: str | Activation, sigma_w2: ArrayLike, sigma_b2: ArrayLike
) -> float | np.ndarray:
    r"""The stable fixed point of the correlation map (at ``q*``).

    .. math::

      c^* = 1 \text{ if } \chi_1 \le 1, \text{ else the largest }
      c^* < 1 \text{ with } c^* = c\text{-map}(c^*)

    In the ordered phase all inputs become perfectly correlated; in the chaotic phase ``c = 1``
    repels and correlations settle at ``c* < 1`` (0, to 1e-14, for odd activations without
    bias). When ``q*`` is 0 or ∞ there is no length to linearise at; ``c* = 1`` by convention,
    which is where deep ReLU networks take all inputs (as a power of depth), while tanh networks
    with ``q* = 0`` become linear and freeze correlations wherever they are.

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_w2: the weight variance ``σ_w²``.
      sigma_b2: the bias variance ``σ_b²``.

    Returns:
      ``c*`` in ``[0, 1]``: a float, or an array for array arguments.

    Example:
      >>> from gradlab import theory
      >>> theory.c_star("tanh", 1.0, 0.05), round(theory.c_star("tanh", 2.5, 0.05), 4)
      (1.0, 0.4468)

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340
    """
    _check_nonnegative(sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return _broadcast(_c_star, activation, sigma_w2, sigma_b2)


def depth_scales(
    activation: str | Activation, sigma_w2: ArrayLike, sigma_b2: ArrayLike
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    r"""The depths over which lengths and correlations forget the input: ``(ξ_q, ξ_c)``.

    Linearising the length and correlation maps at their fixed points, deviations decay as
    ``exp(-l/ξ)`` with

    .. math::

      \xi_q^{-1} = -\ln\Big(\chi_1 + \sigma_w^2 \, \mathbb{E}_z\big[
                    \phi''(\sqrt{q^*} z)\, \phi(\sqrt{q^*} z)\big]\Big), \qquad
      \xi_c^{-1} = -\ln \chi_c, \quad
      \chi_c = \sigma_w^2 \, \mathbb{E}\big[\phi'(u_1^*)\phi'(u_2^*)\big]

    where ``u1*, u2*`` have variance ``q*`` and correlation ``c*`` (so ``χ_c = χ1`` when
    ``c* = 1``); the argument of the first logarithm is the slope of the length map at ``q*``.
    ``ξ_c`` diverges at the order-to-chaos transition: signals (and gradients) propagate
    through about ``ξ_c`` layers. Where convergence is not geometric the depth scale is ``inf``:
    a slope ``>= 1``, or ``ξ_c`` when ``q*`` is 0 or ∞ (e.g. ReLU without bias, whose
    correlation map does not depend on ``σ_w²`` and converges only as a power of depth).

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_w2: the weight variance ``σ_w²``.
      sigma_b2: the bias variance ``σ_b²``.

    Returns:
      ``(xi_q, xi_c)``: floats, or a pair of arrays for array arguments.

    Example:
      >>> from gradlab import theory
      >>> xi_q, xi_c = theory.depth_scales("tanh", 1.0, 0.05)
      >>> round(xi_q, 3), round(xi_c, 2)
      (1.748, 3.63)

    References:
      Schoenholz et al., 2017: https://arxiv.org/abs/1611.01232
    """
    _check_nonnegative(sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return _broadcast(_depth_scales, activation, sigma_w2, sigma_b2)


def critical_sigma_w2(activation: str | Activation, sigma_b2: ArrayLike) -> float | np.ndarray:
    r"""The weight variance at the order-to-chaos transition, where ``χ1 = 1``.

    .. math::

      \sigma_{w,c}^2(\sigma_b^2): \quad
      \sigma_w^2 \, \mathbb{E}_z\big[\phi'(\sqrt{q^*(\sigma_w^2, \sigma_b^2)} z)^2\big] = 1

    Found by bisection (``χ1`` increases with ``σ_w²``), to relative precision 1e-10. Positively
    homogeneous activations have the closed form ``1 / E[φ'(z)²]`` for every ``σ_b²``: ReLU
    ``2`` (He initialisation), linear ``1``. For ReLU with ``σ_b² > 0``, ``q*`` is finite only
    for ``σ_w² < 2`` and diverges at the critical point itself (the length then grows by ``σ_b²``
    per layer); ``χ1 = σ_w²/2`` regardless. For tanh, ``σ_b² = 0`` gives ``1`` (to about 1e-7:
    there ``χ1 - 1`` grows only quadratically on the chaotic side).

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_b2: the bias variance ``σ_b²``.

    Returns:
      ``σ_w²`` at criticality: a float, or an array for an array ``sigma_b2``.

    Raises:
      ValueError: ``χ1 < 1`` for every ``σ_w² <= 1e6``.

    Example:
      >>> from gradlab import theory
      >>> round(theory.critical_sigma_w2("tanh", 0.05), 3), theory.critical_sigma_w2("relu", 0.1)
      (1.761, 2.0)

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340

      Schoenholz et al., 2017: https://arxiv.org/abs/1611.01232

      He et al., 2015: https://arxiv.org/abs/1502.01852
    """
    _check_nonnegative(sigma_b2=sigma_b2)
    return _broadcast(_critical_sigma_w2, activation, sigma_b2)


def order_chaos_line(activation: str | Activation, sigma_b2_values: ArrayLike) -> np.ndarray:
    r"""The order-to-chaos phase boundary: critical ``σ_w²`` for each ``σ_b²``.

    .. math::

      \big\{(\sigma_b^2, \sigma_w^2) : \chi_1(\sigma_w^2, \sigma_b^2) = 1\big\}

    Below the line (smaller ``σ_w²``) the network is ordered and gradients vanish; above it, it is
    chaotic and gradients explode. See :func:`critical_sigma_w2`.

    Args:
      activation: an activation name or an elementwise JAX function.
      sigma_b2_values: bias variances ``σ_b²``.

    Returns:
      An array of critical ``σ_w²``, shaped like ``sigma_b2_values``.

    Example:
      >>> from gradlab import theory
      >>> theory.order_chaos_line("tanh", [0.0, 0.05]).round(3)
      array([1.   , 1.761])

    References:
      Poole et al., 2016: https://arxiv.org/abs/1606.05340
    """
    return np.asarray(critical_sigma_w2(activation, np.asarray(sigma_b2_values, dtype=float)))
