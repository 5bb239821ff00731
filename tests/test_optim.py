"""gradlab.optim on its own: schedules against their closed forms, chains against optax built
from Python floats, the clip/skip flags against hand-derived sequences, and the registries."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gradlab import curvature, optim

TOTAL, WARMUP = 20, 5


def closed_form(kind: str, peak: float, t: int) -> float:
    """The documented schedules (optim.make_schedule), in float64."""
    if kind == "constant":
        return peak
    if kind == "cosine":
        return peak * 0.5 * (1 + math.cos(math.pi * min(t, TOTAL) / TOTAL))
    if kind == "warmup_cosine":
        if t < WARMUP:
            return peak * t / WARMUP
        s = min(t - WARMUP, TOTAL - WARMUP)
        return peak * 0.5 * (1 + math.cos(math.pi * s / (TOTAL - WARMUP)))
    if kind == "warmup_constant":
        return peak * min(t, WARMUP) / WARMUP
    raise ValueError(kind)


def test_schedule_registry_names():
    assert list(optim.SCHEDULES) == ["constant", "cosine", "warmup_cosine", "warmup_constant"]
    with pytest.raises(ValueError, match="valid schedules: constant, cosine"):
        optim.make_schedule("linear", 0.1, TOTAL, WARMUP)


@pytest.mark.parametrize("kind", list(optim.SCHEDULES))
def test_schedule_with_a_traced_peak_equals_its_closed_form(kind):
    """The learning rate is a vmapped hyperparameter inside a sweep: every schedule must take a
    traced peak (optax.warmup_cosine_decay_schedule tests its peak in Python and fails)."""
    peaks = jnp.asarray([1e-3, 0.1, 2.0], jnp.float32)
    steps = jnp.arange(TOTAL + 3)

    def values(peak):
        lr = optim.make_schedule(kind, peak, TOTAL, WARMUP)
        return jax.vmap(lr)(steps) if callable(lr) else jnp.broadcast_to(lr, steps.shape)

    got = np.asarray(jax.jit(jax.vmap(values))(peaks))
    want = [[closed_form(kind, float(p), int(t)) for t in steps] for p in np.asarray(peaks)]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7 * float(peaks.max()))


@pytest.mark.parametrize("name", list(optim.STAGES))
def test_every_stage_hyperparameter_has_a_range_holding_its_default(name):
    for hparam, default in optim.STAGES[name].defaults.items():
        lower, upper, closed = optim.HPARAM_RANGES[hparam]
        assert (lower <= default if closed else lower < default) and default <= upper, hparam


# chain, two grid points, the optax transformation it is documented to be (Python floats).
CHAINS = [
    (
        "sgd",
        [{"learning_rate": 0.1}, {"learning_rate": 0.3}],
        lambda hp: optax.sgd(hp["learning_rate"]),
    ),
    (
        "momentum",
        [{"learning_rate": 0.1, "momentum": 0.5}, {"learning_rate": 0.2, "momentum": 0.9}],
        lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
    ),
    (
        "nesterov",  # momentum from its default
        [{"learning_rate": 0.1}, {"learning_rate": 0.2}],
        lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9, nesterov=True),
    ),
    (
        "adamw",
        [{"learning_rate": 0.01, "weight_decay": 0.1}, {"learning_rate": 0.03, "b1": 0.5}],
        lambda hp: optax.adamw(
            hp["learning_rate"], b1=hp.get("b1", 0.9), weight_decay=hp.get("weight_decay", 1e-4)
        ),
    ),
    (
        "rmsprop",
        [{"learning_rate": 0.01, "decay": 0.5}, {"learning_rate": 0.03, "eps": 1e-3}],
        lambda hp: optax.rmsprop(
            hp["learning_rate"], decay=hp.get("decay", 0.9), eps=hp.get("eps", 1e-8)
        ),
    ),
    (
        "adagrad",
        [{"learning_rate": 0.1}, {"learning_rate": 0.3, "eps": 1e-2}],
        lambda hp: optax.adagrad(hp["learning_rate"], eps=hp.get("eps", 1e-7)),
    ),
    (
        "clip|adam",
        [{"learning_rate": 0.01, "clip_value": 0.2}, {"learning_rate": 0.03, "clip_value": 5.0}],
        lambda hp: optax.chain(optax.clip(hp["clip_value"]), optax.adam(hp["learning_rate"])),
    ),
    (
        "adaptive_grad_clip|clip_by_global_norm|momentum",
        [{"learning_rate": 0.1, "agc_clip": 0.01}, {"learning_rate": 0.1, "clip_norm": 0.3}],
        lambda hp: optax.chain(
            optax.adaptive_grad_clip(hp.get("agc_clip", 0.01)),
            optax.clip_by_global_norm(hp.get("clip_norm", 1.0)),
            optax.sgd(hp["learning_rate"], momentum=0.9),
        ),
    ),
]


def gradients(n: int):
    rng = np.random.default_rng(0)
    return [
        {
            "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=3), jnp.float32),
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize(("chain", "points", "reference"), CHAINS, ids=[c[0] for c in CHAINS])
def test_chain_from_traced_hyperparameters_is_optax_and_compiles_once(chain, points, reference):
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    grads = gradients(4)
    names = sorted({k for p in points for k in p})
    defaults = optim.chain_hparams(chain)

    def run(hp):
        tx = optim.build_chain(chain, hp, schedule="cosine", total_steps=len(grads))
        state, p, out = tx.init(params), params, []
        for g in grads:
            u, state = tx.update(g, state, p)
            p = optax.apply_updates(p, u)
            out.append(u)
        return out

    compiled = jax.jit(run).lower({k: jnp.float32(0.1) for k in names}).compile()
    for point in points:
        hp = {k: point.get(k, defaults[k]) for k in names}
        got = compiled({k: jnp.float32(v) for k, v in hp.items()})  # one program, every point
        schedule = optax.cosine_decay_schedule(point["learning_rate"], len(grads))
        tx = reference({**point, "learning_rate": schedule})
        state, p = tx.init(params), params
        for g, u_got in zip(grads, got, strict=True):
            u, state = tx.update(g, state, p)
            p = optax.apply_updates(p, u)
            for a, b in zip(jax.tree.leaves(u_got), jax.tree.leaves(u), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8, err_msg=f"{chain} {point}")


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_skipped_is_true_exactly_where_apply_if_finite_drops_the_update(limit):
    """apply_if_finite drops a non-finite update unless it is the (limit+1)-th in a row."""
    pattern = [True, False, False, True, False, False, False, False, True]  # finite gradients?
    tx = optim.build_chain("apply_if_finite|sgd", {"max_consecutive_errors": jnp.float32(limit)})
    params = {"w": jnp.ones(2)}
    state, flags, applied = tx.init(params), [], []
    for ok in pattern:
        g = {"w": jnp.asarray([1.0, 1.0 if ok else np.nan])}
        u, state = tx.update(g, state, params)
        flags.append(bool(optim.skipped(state)))
        applied.append(not bool(np.all(np.asarray(u["w"]) == 0)))
    run, want = 0, []
    for ok in pattern:
        run = 0 if ok else run + 1
        want.append(not ok and run <= limit)
    assert flags == want
    assert applied == [not w for w in want]
    # A user's chain with a bare optax.apply_if_finite: the flag is "not finite" (documented).
    bare = optax.apply_if_finite(optax.sgd(0.1), limit)
    state = bare.init(params)
    loose = []
    for ok in pattern:
        _, state = bare.update({"w": jnp.asarray([1.0, 1.0 if ok else np.nan])}, state, params)
        loose.append(bool(optim.skipped(state)))
    assert loose == [not ok for ok in pattern]


def test_clipped_flags_a_change_of_the_gradient():
    tx = optim.build_chain("clip|sgd", {"clip_value": jnp.float32(0.5), "learning_rate": 0.1})
    params = {"w": jnp.zeros(3)}
    state = tx.init(params)
    for g, changed in (
        ([0.1, -0.5, 0.2], False),
        ([0.1, -0.51, 0.2], True),
        ([0.0, 0.0, 0.0], False),
    ):
        _, state = tx.update({"w": jnp.asarray(g)}, state, params)
        assert bool(optim.clipped(state)) is changed, g


@pytest.mark.parametrize(
    ("chain", "rule"),
    [
        ("sgd", "sgd"),
        ("clip_by_global_norm|momentum", "momentum"),
        ("apply_if_finite|clip|adam", "adam"),
        ("nesterov", None),
        ("adamw", None),
        ("rmsprop", None),
        ("adagrad", None),
        ("clip|sgd|adam", None),  # two optimizer stages: no single rule
        (lambda hp: optax.sgd(hp["learning_rate"]), None),
    ],
)
def test_stability_rule_of_a_chain(chain, rule):
    assert optim.stability_rule(chain) == rule
    if (
        rule is not None
    ):  # a rule curvature knows: sgd 2/η, momentum (2+2β)/η, adam (2+2β1)/(η(1-β1))
        want = {"sgd": 2 / 0.1, "momentum": 3.8 / 0.1, "adam": 3.8 / (0.1 * 0.1)}[rule]
        np.testing.assert_allclose(curvature.stability_threshold(rule, 0.1), want, rtol=1e-6)


def test_tolerance_and_layout():
    assert optim.tolerates_nonfinite("apply_if_finite|clip|sgd")
    assert not optim.tolerates_nonfinite("clip|sgd")
    assert not optim.tolerates_nonfinite(lambda hp: optax.sgd(0.1))
    assert optim.ignores_layout("clip|clip_by_global_norm|adamw")
    assert not optim.ignores_layout("apply_if_finite|adaptive_grad_clip|sgd")
