"""Model construction and initialisation against the init schemes' published variances."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlab as gl
from gradlab import inits as gl_inits
from gradlab import models

FAN_IN, FAN_OUT = 400, 300
# Standard deviation of a kernel entry: LeCun 1998, Glorot & Bengio 2010, He et al. 2015.
EXPECTED_STD = {
    "lecun_normal": math.sqrt(1 / FAN_IN),
    "normal": math.sqrt(1 / FAN_IN),
    "glorot_uniform": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "glorot_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
    "he_normal": math.sqrt(2 / FAN_IN),
    "he_uniform": math.sqrt(2 / FAN_IN),
    "orthogonal": math.sqrt(1 / FAN_IN),  # orthonormal columns of length 1 in R^400
}


def init(init, init_scale=1.0, bias_std=None, seed=0):
    module = models.make_model(gl.ModelSpec(hidden=(FAN_OUT,), init=init), num_outputs=5)
    return models.init_params(
        module, jax.random.PRNGKey(seed), jnp.zeros((2, FAN_IN)), init_scale, bias_std
    )


@pytest.mark.parametrize("scheme", sorted(EXPECTED_STD))
@pytest.mark.parametrize("init_scale", [0.5, 2.0])
def test_kernel_std_is_init_scale_times_scheme_std(scheme, init_scale):
    kernel = np.asarray(init(scheme, init_scale)["layer_0"]["kernel"])
    assert kernel.shape == (FAN_IN, FAN_OUT)
    # 120,000 entries: the sample std is within ~1% of the truth.
    np.testing.assert_allclose(kernel.std(), init_scale * EXPECTED_STD[scheme], rtol=0.03)
    assert abs(kernel.mean()) < 0.05 * init_scale * EXPECTED_STD[scheme]


def test_normal_is_gaussian_and_orthogonal_is_orthogonal():
    w = np.asarray(init("normal", 1.5)["layer_0"]["kernel"]) * math.sqrt(FAN_IN) / 1.5
    kurtosis = np.mean(w**4) / np.mean(w**2) ** 2
    assert abs(kurtosis - 3.0) < 0.1  # untruncated Gaussian (a truncated one has < 3)
    q = np.asarray(init("orthogonal", 2.0)["layer_0"]["kernel"])
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(FAN_OUT), atol=1e-4)


def test_bias_std_and_default_zero_biases():
    assert not np.any(init("lecun_normal")["layer_0"]["bias"])
    b = np.asarray(init("lecun_normal", bias_std=0.3)["layer_0"]["bias"])
    np.testing.assert_allclose(b.std(), 0.3, rtol=0.15)
    other = np.asarray(init("lecun_normal", bias_std=0.3, seed=1)["layer_0"]["bias"])
    assert not np.allclose(b, other)


def test_seed_determines_the_draw():
    a, b = init("he_normal", seed=3), init("he_normal", seed=3)
    c = init("he_normal", seed=4)
    assert np.array_equal(a["layer_0"]["kernel"], b["layer_0"]["kernel"])
    assert not np.allclose(a["layer_0"]["kernel"], c["layer_0"]["kernel"])


def test_linear_model_and_layers_in_natural_order():
    module = models.make_model(gl.ModelSpec(hidden=(), activation="linear"), num_outputs=3)
    params = models.init_params(module, jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    assert list(params) == ["layer_0"]
    x = jnp.ones((2, 4))
    expected = x @ params["layer_0"]["kernel"] + params["layer_0"]["bias"][None, :]
    np.testing.assert_allclose(module.apply({"params": params}, x), expected, rtol=1e-6)
    names = [f"layer_{i}" for i in (10, 2, 1, 0)]
    assert models.layer_names(dict.fromkeys(names)) == ["layer_0", "layer_1", "layer_2", "layer_10"]


def test_forward_exposes_preactivations_and_their_gradients():
    module = models.make_model(gl.ModelSpec(hidden=(5, 5), activation="tanh"), num_outputs=2)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4))
    variables = module.init(jax.random.PRNGKey(0), x)
    params = variables["params"]
    out, state = module.apply(
        {"params": params, "perturbations": variables["perturbations"]},
        x,
        mutable=["intermediates"],
    )
    h0 = state["intermediates"]["preact_0"][0]
    np.testing.assert_allclose(
        h0, x @ params["layer_0"]["kernel"] + params["layer_0"]["bias"][None, :], rtol=1e-6
    )
    assert out.shape == (3, 2)


@pytest.mark.parametrize("batch_shape", [(6,), (2, 3)])
def test_kernel_first_dot_is_the_dense_product(batch_shape):
    """MLP layers compute x·W as (Wᵀxᵀ)ᵀ: the values and gradients of the plain x·W + b."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(*batch_shape, 7)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
    plain = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    got = models.kernel_first_dot(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))
    np.testing.assert_allclose(got, np.asarray(x) @ np.asarray(kernel), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, plain, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="batch dimensions"):
        models.kernel_first_dot(x, kernel, (((x.ndim - 1,), (0,)), ((0,), (0,))))

    module = models.MLP(hidden=(5,), num_outputs=3)
    params = module.init(jax.random.PRNGKey(0), x)["params"]

    def by_hand(p):
        def dense(h, layer):
            out = h @ layer["kernel"]
            return out + jnp.broadcast_to(layer["bias"], out.shape)

        h = jax.nn.relu(dense(x, p["layer_0"]))
        return jnp.sum(jnp.sin(dense(h, p["layer_1"])))

    def by_module(p):
        return jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    np.testing.assert_allclose(by_module(params), by_hand(params), rtol=1e-5)
    for a, b in zip(
        jax.tree.leaves(jax.grad(by_module)(params)),
        jax.tree.leaves(jax.grad(by_hand)(params)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_torch_linear_is_pytorchs_default_linear_init():
    # torch.nn.Linear.reset_parameters: kaiming_uniform_(a=√5) -> U(±1/√fan_in) weights, and
    # U(±1/√fan_in) biases. Checked by the bounds and the uniform's variance bound²/3.
    fan_in, fan_out = 400, 300
    module = models.MLP(hidden=(fan_out,), num_outputs=2, init_scheme="torch_linear")
    params = models.init_params(module, jax.random.PRNGKey(0), jnp.zeros((1, fan_in)))
    kernel, bias = params["layer_0"]["kernel"], params["layer_0"]["bias"]
    bound = 1 / np.sqrt(fan_in)
    assert float(jnp.max(jnp.abs(kernel))) <= bound and float(jnp.max(jnp.abs(bias))) <= bound
    np.testing.assert_allclose(float(jnp.var(kernel)), bound**2 / 3, rtol=0.02)
    np.testing.assert_allclose(float(jnp.var(bias)), bound**2 / 3, rtol=0.25)
    np.testing.assert_allclose(
        float(jnp.std(kernel)), gl_inits.init_std("torch_linear", fan_in, 9), rtol=0.02
    )
    assert float(jnp.max(jnp.abs(kernel))) > 0.99 * bound  # uniform up to the bound
