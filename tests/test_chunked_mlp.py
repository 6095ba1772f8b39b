"""The row-chunked MLP equals the plain composition: values, gradients, masks, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from attnzoo.layers.chunked_mlp import mlp_in_row_chunks
from attnzoo.layers.dropout import Dropout, apply_keep_mask, keep_mask
from attnzoo.layers.mlp import torch_dense

KEY = jax.random.key(5)


def _gelu(z):
    return nnx.gelu(z, approximate=False)


def _layers(use_bias=True):
    rngs = nnx.Rngs(0)
    with nnx.use_eager_sharding(False):
        return torch_dense(4, 32, rngs=rngs), nnx.Linear(32, 3, use_bias=use_bias, rngs=rngs)


def _plain(x, fc1, fc2, rate):
    """The definition: fc2(dropout(gelu(fc1(x)))) with the whole array's hash mask."""
    h = _gelu(fc1(x))
    if rate:
        seed = jax.random.bits(KEY, (2,), jnp.uint32)
        h = apply_keep_mask(h, keep_mask(seed, h.shape, rate), rate)
    return fc2(h)


@pytest.mark.parametrize("rate,use_bias", [(0.0, True), (0.2, True), (0.2, False)])
def test_values_and_gradients_equal_the_plain_composition(rate, use_bias):
    fc1, fc2 = _layers(use_bias)
    dropout = Dropout(rate, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 10, 7, 4))  # 70 rows: chunks of 3 + padding

    def chunked(x, fc1, fc2):
        return mlp_in_row_chunks(x, fc1, fc2, _gelu, dropout, rows_per_chunk=8, rngs=KEY)

    def plain(x, fc1, fc2):
        return _plain(x, fc1, fc2, rate)

    np.testing.assert_allclose(chunked(x, fc1, fc2), plain(x, fc1, fc2), rtol=1e-5, atol=1e-6)
    grads = [
        nnx.grad(lambda x, a, b, f=f: (f(x, a, b) ** 3).sum(), argnums=(0, 1, 2))(x, fc1, fc2)
        for f in (chunked, plain)
    ]
    for got, want in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_eval_mode_draws_no_mask():
    fc1, fc2 = _layers()
    dropout = Dropout(0.5, rngs=nnx.Rngs(0))
    dropout.eval()
    x = jax.random.normal(jax.random.key(2), (2, 9, 4))
    np.testing.assert_allclose(
        mlp_in_row_chunks(x, fc1, fc2, _gelu, dropout, rows_per_chunk=4),
        fc2(_gelu(fc1(x))),
        rtol=1e-5,
        atol=1e-6,
    )


def test_batch_sharded_input_stays_sharded():
    fc1, fc2 = _layers()
    dropout = Dropout(0.2, rngs=nnx.Rngs(0))
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))  # as the engine's
    x = jax.random.normal(jax.random.key(3), (16, 12, 4))
    sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))

    @jax.jit
    def run(x):
        return mlp_in_row_chunks(x, fc1, fc2, _gelu, dropout, rows_per_chunk=32, rngs=KEY)

    out = run(sharded)
    assert out.sharding.spec == PartitionSpec("data")
    np.testing.assert_allclose(out, _plain(x, fc1, fc2, 0.2), rtol=1e-5, atol=1e-6)
