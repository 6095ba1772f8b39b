"""Optimizers and schedules built from the config."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from attnzoo.configs import load_config
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.train_loops.optimizers import make_optimizer, muon_dimensions


def _config(name: str, **optimizer) -> ml_collections.ConfigDict:
    config = load_config("vit_tiny_digits")
    config.optimizer.update(name=name, **optimizer)
    config.schedule.update(name="warmup_cosine", warmup_steps=10, end_fraction=0.1)
    return config


def test_warmup_cosine_follows_its_definition():
    _, schedule = make_optimizer(_config("adamw", learning_rate=2e-3), total_steps=110)
    peak, end = 2e-3, 2e-4
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(peak / 2)
    assert float(schedule(10)) == pytest.approx(peak)
    # cosine from peak to end over the 100 steps after warmup
    expected = end + (peak - end) * 0.5 * (1 + math.cos(math.pi * 50 / 100))
    assert float(schedule(60)) == pytest.approx(expected)
    assert float(schedule(110)) == pytest.approx(end)


@pytest.mark.parametrize("name", ["adamw", "sgd", "muon"])
def test_each_optimizer_descends_a_quadratic(name):
    tx, _ = make_optimizer(_config(name, learning_rate=0.05, weight_decay=0.0), total_steps=60)
    target = {
        "w": jnp.asarray(np.random.default_rng(0).normal(size=(8, 4)), jnp.float32),
        "b": jnp.ones((4,)),
    }
    params = jax.tree.map(jnp.zeros_like, target)
    loss = lambda p: sum(jnp.sum((p[k] - target[k]) ** 2) for k in p)

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    (final, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=60)
    assert loss(final) < 0.2 * loss(params)


def test_weight_decay_skips_biases_and_clipping_bounds_the_update():
    tx, _ = make_optimizer(
        _config("sgd", learning_rate=1.0, weight_decay=0.5, momentum=0.0, clip_norm=1.0),
        total_steps=20,
    )
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    zero = jax.tree.map(jnp.zeros_like, params)
    state = tx.init(params)
    for _ in range(11):  # past warmup: lr = 1 at step 10
        updates, state = tx.update(zero, state, params)
    np.testing.assert_allclose(updates["b"], 0.0)  # no decay on rank-1 params
    assert float(jnp.abs(updates["w"]).max()) > 0  # decayed
    big = {"w": jnp.full((2, 2), 100.0), "b": jnp.full((2,), 100.0)}
    updates, _ = tx.update(big, state, jax.tree.map(jnp.zeros_like, params))
    assert float(optax.tree.norm(updates)) <= 1.0 + 1e-5


def test_attention_biases_get_adamw_without_decay_whatever_their_rank():
    """MultiHeadAttention's q/k/v biases are `[heads, head_dim]`: 2-D, yet biases."""
    with nnx.use_eager_sharding(False):
        attention = MultiHeadAttention(16, 4, use_bias=True, rngs=nnx.Rngs(0))
    params = nnx.state(attention, nnx.Param)
    dims = muon_dimensions(params)
    assert params["query"]["bias"].get_value().ndim == 2
    assert dims["query"]["bias"] is None and dims["out"]["bias"] is None  # AdamW
    assert tuple(dims["query"]["kernel"]) == (0, 2)  # Muon, per head
    config = _config("muon", learning_rate=1e-2, weight_decay=0.5, clip_norm=0.0)
    config.schedule.update(name="constant", warmup_steps=0)
    tx, _ = make_optimizer(config, total_steps=10)
    pure = nnx.as_pure(params)
    zero = jax.tree.map(jnp.zeros_like, pure)
    updates, _ = tx.update(zero, tx.init(params), pure)
    np.testing.assert_allclose(updates["query"]["bias"], 0.0)  # not decayed
    assert float(jnp.abs(updates["query"]["kernel"]).max()) > 0  # decayed


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        make_optimizer(_config("adamx"), total_steps=10)
