"""Select-and-Pack: selection, packing, isolation between images, equivalence when all kept."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.token_select import SelectAndPack, gumbel_select, pack, pack_slots, unpack
from attnzoo.zoo.vision.vit import EncoderBlock


@pytest.fixture(autouse=True)
def _no_eager_sharding():
    with nnx.use_eager_sharding(False):
        yield


def _keep(b=5, n=9, seed=0):
    return jax.random.bernoulli(jax.random.key(seed), 0.6, (b, n))


def test_pack_then_unpack_is_identity_on_kept_tokens():
    keep = _keep()
    x = jax.random.normal(jax.random.key(1), (5, 9, 4))
    slots = pack_slots(keep, container_len=12, num_containers=5)
    packed, ids = pack(x, slots, 12, 5)
    assert packed.shape == (5, 12, 4) and ids.shape == (5, 12)
    back = unpack(packed, slots, jnp.zeros_like(x))
    np.testing.assert_array_equal(back, jnp.where(keep[..., None], x, 0.0))
    # each image's kept tokens sit in one container, in order, labelled with the image
    slots, ids = np.asarray(slots), np.asarray(ids).reshape(-1)
    for i in range(5):
        own = slots[i][np.asarray(keep[i])]
        assert len(set(own // 12)) <= 1 and np.all(np.diff(own) == 1)
        assert np.all(ids[own] == i)
    assert np.sum(ids >= 0) == int(keep.sum())


def test_images_beyond_capacity_bypass():
    keep = jnp.ones((4, 6), bool)
    slots = pack_slots(keep, container_len=6, num_containers=2)
    np.testing.assert_array_equal(np.asarray(slots[2:]), -1)
    np.testing.assert_array_equal(np.asarray(slots[:2]).reshape(-1), np.arange(12))


def test_gumbel_select_is_hard_straight_through_and_follows_the_sigmoid():
    logits = jnp.full((20000,), 0.8)
    keep, gate = gumbel_select(logits, jax.random.key(0))
    np.testing.assert_array_equal(gate, keep.astype(jnp.float32))
    assert abs(float(keep.mean()) - float(jax.nn.sigmoid(0.8))) < 0.01  # P(keep) = sigmoid(s)
    grad = jax.grad(lambda s: gumbel_select(s, jax.random.key(0))[1].sum())(logits)
    assert bool((grad > 0).all())  # the straight-through gradient reaches the gate
    keep, _ = gumbel_select(jnp.array([-1.0, 2.0]), None)  # eval: no noise
    np.testing.assert_array_equal(keep, [False, True])


def _spa(width=16, n=9, container_len=18, capacity=1.0, gate_bias=None):
    rngs = nnx.Rngs(0)
    block = EncoderBlock(
        width,
        2,
        32,
        dropout=0.0,
        attention_impl="reference",
        record_weights=False,
        dtype=jnp.float32,
        rngs=rngs,
    )
    spa = SelectAndPack(
        block, width, container_len=container_len, capacity=capacity, record=False, rngs=rngs
    )
    if gate_bias is not None:
        spa.gate.bias[...] = jnp.full((1,), gate_bias)
    return spa


@pytest.mark.parametrize("container_len", [9, 18])
def test_every_token_kept_equals_the_plain_block(container_len):
    spa = _spa(container_len=container_len, gate_bias=1e4)  # sigmoid gate ~1: keeps all
    x = jax.random.normal(jax.random.key(2), (4, 9, 16))
    out = spa(x, rngs=nnx.Rngs(3))
    np.testing.assert_allclose(out, spa.block(x), rtol=1e-5, atol=1e-5)


def test_attention_never_crosses_images():
    spa = _spa(gate_bias=0.5)
    x = jax.random.normal(jax.random.key(4), (4, 9, 16))
    out = spa(x, rngs=nnx.Rngs(5))
    x2 = x.at[0].set(jax.random.normal(jax.random.key(6), (9, 16)))
    out2 = spa(x2, rngs=nnx.Rngs(5))
    np.testing.assert_allclose(out2[1:], out[1:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out2[0], out[0])
    # and a kept token's output depends only on its own image's kept tokens
    alone = spa(x[1:2], rngs=None)
    together = spa(x, rngs=None)
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-5)


def test_unselected_tokens_bypass_the_block():
    spa = _spa(gate_bias=-1e4)  # keeps nothing
    x = jax.random.normal(jax.random.key(7), (3, 9, 16))
    np.testing.assert_array_equal(spa(x, rngs=nnx.Rngs(0)), x)


def test_bad_container_is_rejected():
    with pytest.raises(ValueError, match="container_len=4 < 9"):
        _spa(container_len=4)(jnp.zeros((2, 9, 16)))
