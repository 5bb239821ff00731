"""Parametrizations (SP, NTK, μP, mean field) and per-layer learning rates against independent
references.

The closed forms are Tensor Programs V's Table 3 (Yang et al. 2022), written here as ratios to
the base model (every hidden layer ``base_width`` wide, where μP is SP), Jacot et al.'s NTK
parametrization and Sohl-Dickstein 2024's reference notebook (mean field); the training
references are hand-written loops with
``optax.multi_transform``, one optimizer per parameter, sharing nothing with the engine but
the initialiser.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradlab as gl
from gradlab import inits, models
from tests.reference import CLASSES, N_TRAIN, reference_batches, small_dataset

D, N, B, K = 24, 512, 32, 6  # data dimension, hidden width, base width, outputs


@pytest.fixture(scope="module")
def dataset():
    return small_dataset()


# -- the table -----------------------------------------------------------------------------------
def table3(parametrization: str, init: str) -> dict[str, dict[str, float]]:
    """Per layer kind of an MLP D -> N -> N -> K: the effective kernel std (of m·W), and the
    effective learning rates of kernel and bias, SGD and Adam, as multiples of the chain's η.

    μP: Tensor Programs V, Table 3, relative to the base model of width B (SP there): input
    weights and all biases: Var 1/fan_in, SGD η·fan_out, Adam η; output weights: Var 1/fan_in²,
    SGD η/fan_in, Adam η/fan_in; hidden weights: Var 1/fan_in, SGD η, Adam η/fan_in. The init
    scheme sets the variance at the base shape. NTK (Jacot et al. 2018): the scheme's std, and
    the chain's η on the unit-variance stored weight. SP: the scheme's std and the chain's η.
    """
    s = lambda i, o: inits.init_std(init, i, o)
    shapes = {"input": (D, N), "hidden": (N, N), "output": (N, K)}
    if parametrization == "sp":
        return {
            k: dict(std=s(*io), sgd=1.0, sgd_b=1.0, adam=1.0, adam_b=1.0)
            for k, io in shapes.items()
        }
    if parametrization == "ntk":  # the unit-variance W trains at η, so W/√fan_in at η/fan_in
        return {
            k: dict(std=s(i, o), sgd=1 / i, sgd_b=1.0, adam=1 / math.sqrt(i), adam_b=1.0)
            for k, (i, o) in shapes.items()
        }
    r = N / B
    return {
        "input": dict(std=s(D, B), sgd=r, sgd_b=r, adam=1.0, adam_b=1.0),
        "hidden": dict(std=s(B, B) / math.sqrt(r), sgd=1.0, sgd_b=r, adam=1 / r, adam_b=1.0),
        "output": dict(std=s(B, K) / r, sgd=1 / r, sgd_b=1.0, adam=1 / r, adam_b=1.0),
    }


@pytest.mark.parametrize("init", ["lecun_normal", "glorot_normal"])
@pytest.mark.parametrize("parametrization", ["sp", "ntk", "mup"])
def test_every_layer_kind_follows_the_table(parametrization, init):
    module = models.MLP(
        hidden=(N, N),
        num_outputs=K,
        init_scheme=init,
        parametrization=parametrization,
        base_width=B,
    )
    params = models.init_params(module, jax.random.PRNGKey(0), jnp.zeros((2, D)))
    rules = module.rules(D)
    expected = table3(parametrization, init)
    for i, kind in enumerate(("input", "hidden", "output")):
        rule, want = rules[i], expected[kind]
        assert rule.kind == kind
        stored = np.asarray(params[f"layer_{i}"]["kernel"], np.float64)
        m = rule.multiplier
        # The drawn weights (at least 3,072 entries: the sample std is within ~2%).
        np.testing.assert_allclose(stored.std() * m, want["std"], rtol=0.05, err_msg=kind)
        np.testing.assert_allclose(stored.std(), rule.std, rtol=0.05, err_msg=kind)
        # W_eff = m·W: an SGD step on W moves W_eff by η_k·m², an Adam step (which does not see
        # the gradient's scale) by η_k·m; biases are not multiplied.
        (sgd_k, sgd_b), (adam_k, adam_b) = rule.lr("sgd"), rule.lr("adam")
        np.testing.assert_allclose(
            [sgd_k * m * m, sgd_b, adam_k * m, adam_b],
            [want["sgd"], want["sgd_b"], want["adam"], want["adam_b"]],
            rtol=1e-12,
            err_msg=kind,
        )


def test_ntk_is_unit_variance_with_a_one_over_root_fan_in_multiplier():
    module = models.MLP(hidden=(N,), num_outputs=K, activation="relu", parametrization="ntk")
    params = models.init_params(module, jax.random.PRNGKey(1), jnp.zeros((2, D)), bias_std=0.5)
    for name in ("layer_0", "layer_1"):  # lecun_normal: unit variance under NTK
        np.testing.assert_allclose(np.std(params[name]["kernel"]), 1.0, rtol=0.05)
    x = jax.random.normal(jax.random.PRNGKey(2), (7, D))
    p0, p1 = params["layer_0"], params["layer_1"]
    hidden = np.maximum(
        np.asarray(x) @ np.asarray(p0["kernel"]) / math.sqrt(D) + np.asarray(p0["bias"]), 0
    )
    expected = hidden @ np.asarray(p1["kernel"]) / math.sqrt(N) + np.asarray(p1["bias"])
    out = module.apply({"params": params}, x)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_init_scale_and_torch_biases_under_mup():
    module = models.MLP(
        hidden=(N,),
        num_outputs=K,
        init_scheme="torch_linear",
        parametrization="mup",
        base_width=B,
    )
    params = models.init_params(module, jax.random.PRNGKey(3), jnp.zeros((2, D)), init_scale=2.0)
    # torch_linear: kernel U(±1/√fan_in) (std 1/√(3 fan_in)), bias U(±1/√fan_in); μP reads the
    # output layer's at the base fan-in B (mup's MuReadout and rescale_linear_bias).
    out_kernel = np.asarray(params["layer_1"]["kernel"])
    np.testing.assert_allclose(out_kernel.std(), 2.0 / math.sqrt(3 * B), rtol=0.05)
    assert np.abs(params["layer_1"]["bias"]).max() <= 1 / math.sqrt(B)
    assert np.abs(params["layer_1"]["bias"]).max() > 1 / math.sqrt(N)
    assert np.abs(params["layer_0"]["bias"]).max() <= 1 / math.sqrt(D)


# -- μP is SP at the base width -------------------------------------------------------------------
def test_mup_at_base_width_is_sp_bit_for_bit(dataset):
    def sweep(model, **kwargs):
        spec = gl.SweepSpec(
            model=model,
            data=dataset,
            optimizers=("sgd", "clip_by_global_norm|adam"),
            grid={"seed": [0, 1], "learning_rate": [0.05, 0.3]},
            steps=6,
            batch_size=16,
        )
        return gl.run(spec.replace(**kwargs), progress=False)

    sp = gl.ModelSpec(hidden=(16, 16), activation="tanh", init="glorot_uniform")
    base = sweep(sp)
    mup = sweep(dataclasses.replace(sp, parametrization="mup", base_width=16))
    for name in base.data_vars:  # every recorded variable of the default metric set
        np.testing.assert_array_equal(mup[name].values, base[name].values, err_msg=name)
    # Away from the base width μP is not SP (the comparison above can fail).
    other = sweep(
        dataclasses.replace(sp, parametrization="mup", base_width=8),
        optimizers=("sgd",),
        metrics=("none",),
    )
    assert not np.array_equal(other["loss"].values, base["loss"].sel(optimizer=["sgd"]).values)


# -- per-layer learning rates against optax.multi_transform ---------------------------------------
@jax.jit
@jax.value_and_grad
def hand_loss(p, x, y, multipliers):
    """Cross-entropy of the forward pass h = m_l·(x W) + b written out (tanh, the last linear);
    compiled once per parameter shapes, the multipliers traced."""
    names = sorted(p)
    for i, name in enumerate(names):
        h = multipliers[i] * (x @ p[name]["kernel"]) + p[name]["bias"][None, :]
        x = jnp.tanh(h) if i < len(names) - 1 else h
    logp = jax.nn.log_softmax(x)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def hand_losses(dataset, module, seed, make_tx, factors, multipliers, steps):
    """Per-step losses of a hand-written loop: the forward pass h = m_l·(x W) + b written out,
    one optax optimizer per parameter (``make_tx(factor)``, ``factors[layer][param]``)."""
    params = models.init_params(
        module, jax.random.PRNGKey(seed), jnp.zeros((16, dataset.x_train.shape[1]))
    )
    names = sorted(params)
    multipliers = jnp.asarray(multipliers, jnp.float32)

    labels = {n: {"kernel": f"{n}/kernel", "bias": f"{n}/bias"} for n in names}
    tx = optax.multi_transform(
        {f"{n}/{p}": make_tx(factors[n][p]) for n in names for p in ("kernel", "bias")}, labels
    )
    state, out = tx.init(params), []
    for idx in reference_batches(N_TRAIN, 16, steps):
        loss, grads = hand_loss(params, dataset.x_train[idx], dataset.y_train[idx], multipliers)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(float(loss))
    return np.array(out)


CHAINS = {  # chain string -> (the hand optimizer at learning rate η, its update kind)
    "adam": (lambda eta: optax.adam(eta), "adam"),
    "momentum": (lambda eta: optax.sgd(eta, momentum=0.9), "sgd"),
}


@pytest.mark.slow  # six sweeps against a hand loop
@pytest.mark.parametrize(
    "parametrization, hidden, mup_lr",
    [
        # SP: the parametrization multiplies nothing.
        ("sp", (8, 8), {"sgd": [(1, 1), (1, 1), (1, 1)], "adam": [(1, 1), (1, 1), (1, 1)]}),
        # μP, base 4, widths 8 and 16 (r = 2, 4): (kernel, bias) from the mup library's MuSGD
        # (vector-like: η·r of the width; hidden kernel η·r_out/r_in) and MuAdam (hidden
        # kernel η/r_in), output multiplier 1/r_in = 1/4.
        ("mup", (8, 16), {"sgd": [(2, 2), (2, 4), (4, 1)], "adam": [(1, 1), (1 / 2, 1), (1, 1)]}),
    ],
)
def test_layer_learning_rates_match_multi_transform(dataset, parametrization, hidden, mup_lr):
    model = gl.ModelSpec(
        hidden=hidden, activation="tanh", parametrization=parametrization, base_width=4
    )
    grid = {"seed": [0], "learning_rate": [0.02], "lr_mult_0": [0.5, 2.0], "lr_mult_2": [0.0, 3.0]}
    spec = gl.SweepSpec(
        model=model, data=dataset, optimizers=tuple(CHAINS), grid=grid, steps=8, batch_size=16
    )
    ds = gl.run(spec, progress=False)
    module = models.make_model(model, CLASSES)
    multipliers = [1.0, 1.0, 4**-1.0 if parametrization == "mup" else 1.0]
    for chain, (make, kind) in CHAINS.items():
        for (i, m0), (j, m2) in itertools.product(
            enumerate(grid["lr_mult_0"]), enumerate(grid["lr_mult_2"])
        ):
            mults = [m0, 1.0, m2]
            factors = {
                f"layer_{n}": {"kernel": mults[n] * k, "bias": mults[n] * b}
                for n, (k, b) in enumerate(mup_lr[kind])
            }
            want = hand_losses(
                dataset, module, 0, lambda c, make=make: make(0.02 * c), factors, multipliers, 8
            )
            got = (
                ds["loss"]
                .sel(optimizer=chain)
                .isel(seed=0, learning_rate=0, lr_mult_0=i, lr_mult_2=j)
            )
            np.testing.assert_allclose(got.values, want, rtol=2e-5, err_msg=f"{chain} {m0} {m2}")
            assert (
                not ds["diverged"]
                .sel(optimizer=chain)
                .isel(seed=0, learning_rate=0, lr_mult_0=i, lr_mult_2=j)
            )


def test_a_grid_of_layer_rates_is_one_program(dataset):
    spec = gl.SweepSpec(
        model=gl.ModelSpec(hidden=(8, 8), activation="tanh"),
        data=dataset,
        optimizers=("clip_by_global_norm|sgd",),
        grid={"lr_mult_0": [0.5, 1.0], "lr_mult_2": [1.0, 2.0]},
        steps=3,
        batch_size=16,
    )
    plan = gl.make_plan(spec, dataset)
    assert len(plan.groups) == 1 and plan.layout.reads == {"lr_mult_0": [True], "lr_mult_2": [True]}
    assert len(plan.group_runs(0)["lr_mult_0"]) == 4
    gl.run(spec, progress=False)
    again = gl.run(
        spec.replace(grid={"lr_mult_0": [0.1, 3.0], "lr_mult_2": [1.5, 2.5]}), progress=False
    )
    assert again.attrs["compile_time_s"] == 0


# -- mean field: Sohl-Dickstein 2024's network -------------------------------------------------
def notebook_net(theta, x, activation):
    """The reference notebook's ``net`` (github.com/Sohl-Dickstein/fractal), written out: every
    layer z = x W/√fan_in, tanh(√2·z) or √2·relu(z) between layers, the readout's z divided
    by √fan_in once more."""
    for w in theta:
        z = jnp.dot(x, w) / jnp.sqrt(w.shape[0])
        if activation == "tanh":
            x = jnp.tanh(z * jnp.sqrt(2.0))
        elif activation == "relu":
            x = jax.nn.relu(z) * jnp.sqrt(2.0)
        else:
            x = z
    return z / jnp.sqrt(theta[-1].shape[0])


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_mean_field_forward_and_init_are_the_reference_net(activation):
    width, d = 512, 16
    kwargs = dict(hidden=(width,), num_outputs=1, activation=activation, init_scheme="normal")
    module = models.MLP(**kwargs, use_bias=False, parametrization="mean_field")
    key, x = jax.random.PRNGKey(3), jax.random.normal(jax.random.PRNGKey(4), (8, d))
    params = models.init_params(module, key, jnp.zeros((2, d)))
    theta = [params["layer_0"]["kernel"], params["layer_1"]["kernel"]]
    # The stored kernels are N(0, 1): the SP draw of init="normal" (std 1/√fan_in) times
    # √fan_in, and their sample std is 1 (16·512 and 512 entries).
    sp = models.init_params(models.MLP(**kwargs, use_bias=False), key, jnp.zeros((2, d)))
    sp_theta = [sp["layer_0"]["kernel"], sp["layer_1"]["kernel"]]
    for w, w_sp, fan_in in zip(theta, sp_theta, [d, width], strict=True):
        np.testing.assert_allclose(w, w_sp * math.sqrt(fan_in), rtol=1e-6)
    assert abs(float(jnp.std(theta[0])) - 1) < 0.03 and abs(float(jnp.std(theta[1])) - 1) < 0.1
    np.testing.assert_allclose(
        module.apply({"params": params}, x),
        notebook_net(theta, x, activation),
        rtol=2e-5,
        atol=1e-7,
    )
    rules = module.rules(d)
    assert [r.lr("sgd") for r in rules] == [(1.0, 1.0)] * 2
    assert models.layer_lr_multipliers(module, d, "sgd") is None  # the chain's own rates
    # a deeper net: every layer but the readout is a hidden-side layer of the notebook's loop
    deep = models.MLP(
        hidden=(32, 24), num_outputs=3, activation=activation, init_scheme="normal",
        use_bias=False, parametrization="mean_field",
    )  # fmt: skip
    params = models.init_params(deep, key, jnp.zeros((2, d)))
    theta = [params[f"layer_{i}"]["kernel"] for i in range(3)]
    np.testing.assert_allclose(
        deep.apply({"params": params}, x), notebook_net(theta, x, activation), rtol=2e-5, atol=1e-7
    )


def test_mean_field_trains_as_the_reference_notebook():
    """gradlab's mse is half the notebook's mean((f − y)²), so its rate 2η is the notebook's η."""
    data = gl.DataSpec(name="gaussian")
    model = gl.ModelSpec(
        hidden=(16,), activation="tanh", init="normal", use_bias=False, parametrization="mean_field"
    )
    rates = {"lr_mult_0": [3.0, 300.0], "lr_mult_1": [10.0, 4000.0]}
    spec = gl.SweepSpec(
        model=model, data=data, loss="mse", optimizers=("sgd",),
        grid={"learning_rate": [1.0], **rates}, steps=12, batch_size=None, metrics=("none",),
    )  # fmt: skip
    ds = gl.run(spec, progress=False)
    arrays = gl.data.load(data)
    x, y = jnp.asarray(arrays.x_train), jnp.asarray(arrays.y_train)
    assert x.shape == (272, 16) and y.shape == (272, 1)  # as many examples as parameters
    params = models.init_params(models.make_model(model, 1), jax.random.PRNGKey(0), x[:2])
    theta0 = [params["layer_0"]["kernel"], params["layer_1"]["kernel"]]

    def loss(theta):
        return jnp.mean((notebook_net(theta, x, "tanh") - y) ** 2)

    grad = jax.jit(jax.value_and_grad(loss))
    outcomes = set()
    for (i, a), (j, b) in itertools.product(*(enumerate(v) for v in rates.values())):
        theta, want = theta0, []
        for _ in range(12):
            value, g = grad(theta)
            want.append(float(value) / 2)
            theta = [theta[0] - a / 2 * g[0], theta[1] - b / 2 * g[1]]
        want = np.array(want)
        run = ds.isel(optimizer=0, learning_rate=0, lr_mult_0=i, lr_mult_1=j)
        # gradlab's rule: diverged at the first step whose loss is not finite or exceeds 10x
        # the initial loss (the default divergence_factor).
        bad = ~np.isfinite(want) | (want > 10 * want[0])
        at = int(np.argmax(bad)) if bad.any() else -1
        assert int(run["diverged_at"]) == at and bool(run["diverged"]) == (at >= 0)
        stop = at if at >= 0 else 12
        np.testing.assert_allclose(run["loss"].values[:stop], want[:stop], rtol=1e-4)
        outcomes.add(at >= 0)
    assert outcomes == {True, False}  # the grid holds both a trained and a diverged run


# -- bad input ------------------------------------------------------------------------------------
class Tiny(nn.Module):
    """A user's module with two layers."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(CLASSES, name="layer_1")(jnp.tanh(nn.Dense(4, name="layer_0")(x)))


def spec_with(dataset, **kwargs):
    kwargs.setdefault("model", gl.ModelSpec(hidden=(8, 8)))
    return gl.SweepSpec(data=dataset, steps=2, batch_size=16, **kwargs)


BAD = [
    ("model.parametrization", lambda d: gl.ModelSpec(parametrization="mu-p")),
    ("model.base_width", lambda d: gl.ModelSpec(parametrization="mup")),
    ("model.base_width", lambda d: gl.ModelSpec(parametrization="mup", base_width=0)),
    ("model.base_width", lambda d: gl.ModelSpec(parametrization="mup", base_width=-8)),
    ("model.base_width", lambda d: gl.ModelSpec(base_width=16.5)),
    ("grid.lr_mult_3", lambda d: spec_with(d, grid={"lr_mult_3": [1.0]})),
    ("grid.lr_mult_01", lambda d: spec_with(d, grid={"lr_mult_01": [1.0]})),
    ("grid.lr_mult_0", lambda d: spec_with(d, grid={"lr_mult_0": [-1.0]})),
    (
        "grid.lr_mult_0",
        lambda d: spec_with(
            d, optimizers=("sgd", lambda hp: optax.sgd(0.1)), grid={"lr_mult_0": [1.0]}
        ),
    ),
    (
        "optimizers[0]",
        lambda d: spec_with(
            d,
            model=gl.ModelSpec(hidden=(8,), parametrization="mup", base_width=4),
            optimizers=(lambda hp: optax.sgd(0.1),),
        ),
    ),
    (
        "grid.lr_mult_2",
        lambda d: gl.make_plan(spec_with(d, model=Tiny(), grid={"lr_mult_2": [1.0]}), d),
    ),
    ("metrics", lambda d: spec_with(d, grid={"lr_mult_1": [2.0]}, metrics=("sharpness",))),
    (
        "metrics",
        lambda d: spec_with(
            d,
            model=gl.ModelSpec(hidden=(8, 16), parametrization="mup", base_width=8),
            metrics=("default", "precond_sharpness"),
        ),
    ),
    ("model.base_width", lambda d: gl.from_toml('steps = 2\n[model]\nparametrization = "mup"\n')),
    (
        "model.parametrization",
        lambda d: gl.from_toml('steps = 2\n[model]\nparametrization = "NTK"\n'),
    ),
]


@pytest.mark.parametrize("field, build", BAD, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD)])
def test_bad_input_names_the_field(dataset, field, build):
    with pytest.raises(gl.ConfigError, match="^" + re.escape(field) + ": "):
        build(dataset)


def test_toml_round_trip_and_sp_specs_keep_their_text():
    spec = gl.from_toml(
        'steps = 2\n[model]\nhidden = [64, 64]\nparametrization = "mup"\nbase_width = 16\n'
        "[grid]\nlr_mult_0 = [0.5, 1.0]\n"
    )
    assert spec.model.parametrization == "mup" and spec.model.base_width == 16
    assert gl.from_toml(spec.toml) == spec
    # The default parametrization is not written: an SP sweep's text (and fingerprint) is what
    # it was before parametrizations existed.
    assert "parametrization" not in gl.SweepSpec(steps=2).toml


@pytest.mark.parametrize(
    "chain, kind",
    [
        ("sgd", "sgd"),
        ("nesterov", "sgd"),
        ("clip_by_global_norm|momentum", "sgd"),
        ("apply_if_finite|clip|adam", "adam"),
        ("adamw", "adam"),
        ("rmsprop", "adam"),
        ("adagrad", "adam"),
        (lambda hp: optax.sgd(0.1), None),
    ],
)
def test_update_kind_is_the_optimizer_stages(chain, kind):
    # mup's README: RMSProp and Adagrad normalise the gradient entrywise, as Adam does.
    assert gl.optim.update_kind(chain) == kind
