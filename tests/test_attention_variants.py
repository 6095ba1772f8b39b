"""MoBA, MoH, SSA and MTA against their definitions (hand-worked selections, numpy, and the
limits in which they reduce to plain attention)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.causal_attention import CausalAttention
from attnzoo.layers.masks import BlockSparse, Causal
from attnzoo.layers.mixture_of_heads import MixtureOfHeadsAttention, moh_gates
from attnzoo.layers.moba import MobaAttention, moba_selection
from attnzoo.layers.multi_token_attention import MultiTokenAttention
from attnzoo.layers.subsampled_attention import SubsampledAttention, subsampled_blocks

E, H, T = 32, 4, 8


@pytest.fixture(autouse=True)
def _no_eager_sharding():
    with nnx.use_eager_sharding(False):
        yield


def x_input(t=T):
    return jnp.asarray(np.random.default_rng(1).standard_normal((2, t, E)), jnp.float32)


forward = nnx.jit(lambda m, x: m(x))


def with_dense_params(cls, **options):
    """A variant layer and a dense layer holding the same projections."""
    layer = cls(E, H, num_kv_heads=2, impl="xla", rngs=nnx.Rngs(0), **options)
    dense = CausalAttention(E, H, num_kv_heads=2, impl="xla", rngs=nnx.Rngs(0))
    for name in ("query", "key", "value", "out"):
        setattr(dense, name, getattr(layer, name))
    return layer, dense


def test_moba_selection_hand_worked():
    # Blocks of 2 keys: means (1, 0), (0, 1), (1, 1). top-2 per query.
    k = jnp.asarray([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [1, 1]], jnp.float32)
    q = jnp.asarray([[1, 0], [1, 0], [0, 1], [1, 0], [1, 0], [0, 1]], jnp.float32)
    sel = moba_selection(q[None, :, None], k[None, :, None], 0, block_size=2, top_k=2)
    got = [sorted(int(i) for i in row if i >= 0) for row in np.asarray(sel[0, 0])]
    # rows 0-1: own block only; 2-3: own + the one past block; 4: gate b0=1 > b1=0;
    # 5: gate b1=1 > b0=0. Future blocks never; own block always.
    assert got == [[0], [0], [0, 1], [0, 1], [0, 2], [1, 2]]
    allowed = (Causal() & BlockSparse(1, 2, sel)).materialize(6, 6)[0, 0]
    np.testing.assert_array_equal(allowed[5], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(allowed[4], [1, 1, 0, 0, 1, 0])
    # decoding: the same queries at offset 4 over the same keys select the same blocks
    tail = moba_selection(q[None, 4:, None], k[None, :, None], 4, block_size=2, top_k=2)
    np.testing.assert_array_equal(tail, sel[:, :, 4:])


def test_moba_with_every_block_is_dense_causal():
    moba, dense = with_dense_params(MobaAttention, block_size=2, top_k=T)
    x = x_input()
    np.testing.assert_allclose(forward(moba, x), forward(dense, x), atol=1e-5)


def test_moh_gates_definition():
    rng = np.random.default_rng(0)
    s, r, m = (rng.standard_normal((5, n)) for n in (2, 4, 2))
    gates, balance = moh_gates(jnp.asarray(s), jnp.asarray(r), jnp.asarray(m), top_k=2)

    def softmax(z):
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)

    mix = 2 * softmax(m)
    p = softmax(r)
    top = np.argsort(-p, axis=-1)[:, :2]
    on = np.zeros_like(p)
    np.put_along_axis(on, top, 1.0, axis=-1)
    routed = 2 * p * on / (p * on).sum(-1, keepdims=True) * mix[:, 1:]
    want = np.concatenate([2 * softmax(s) * mix[:, :1], routed], axis=-1)
    np.testing.assert_allclose(gates, want, rtol=1e-5)
    np.testing.assert_allclose(balance, 4 * np.sum(p.mean(0) * on.mean(0)), rtol=1e-5)


def test_moh_with_every_head_on_is_dense_multi_head():
    moh, dense = with_dense_params(MixtureOfHeadsAttention, shared_heads=1, top_k=H - 1)
    for router in (moh.shared_router, moh.routed_router, moh.mix_router):
        router.kernel[...] = jnp.zeros_like(router.kernel[...])
    x = x_input()

    out, inter = nnx.jit(nnx.capture(lambda m, x: m(x), nnx.Intermediate))(moh, x)
    np.testing.assert_allclose(out, forward(dense, x), atol=1e-5)
    np.testing.assert_allclose(inter["aux_loss"][0], 0.01 * 3 * 3 * (1 / 3), rtol=1e-5)


def test_ssa_blocks_are_local_plus_random_older():
    draw = jax.jit(subsampled_blocks, static_argnums=(1, 2, 3, 4, 5))
    blocks = np.asarray(draw(jax.random.key(0), 3, 2, 6, 2, 2))  # [b, h, nb, 4]
    for n in range(6):
        row = blocks[:, :, n]
        np.testing.assert_array_equal(row[..., 0], n)  # own block
        np.testing.assert_array_equal(row[..., 1], n - 1 if n else -1)  # its neighbour
        far = row[..., 2:]
        assert np.all((far == -1) | ((far >= 0) & (far <= n - 2)))  # only older blocks
        want = min(2, max(n - 1, 0))  # as many as exist, distinct
        assert all(len(set(f[f >= 0])) == want for f in far.reshape(-1, 2))
    assert len({tuple(b.ravel()) for b in blocks[:, :, 5, 2:]}) > 1  # rows draw differently


def test_ssa_is_dense_at_eval_and_sparse_in_training():
    ssa, dense = with_dense_params(SubsampledAttention, block_size=2, local_blocks=1)
    x = x_input()
    want = forward(dense, x)
    np.testing.assert_allclose(forward(ssa, x), want, atol=1e-5)
    train = nnx.jit(lambda m, x, rng: m(x, rng=rng))(ssa, x, jax.random.key(0))
    assert np.abs(train - want).max() > 1e-3


def test_mta_at_identity_init_is_plain_attention():
    mta, dense = with_dense_params(MultiTokenAttention)
    x = x_input()
    np.testing.assert_allclose(forward(mta, x), forward(dense, x), atol=1e-5)


def test_mta_convolution_and_head_mix_definition():
    """One head pair, random kernels: logits zeroed where masked, conv with the query axis
    padded above and the key axis on both sides, head mix, re-mask, softmax (numpy)."""
    t, cq, ck = 5, 2, 3
    layer = MultiTokenAttention(E, 2, query_kernel=cq, key_kernel=ck, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    kernel, mix = rng.standard_normal((2, cq, ck)), rng.standard_normal((2, 2))
    layer.conv_kernel[...], layer.head_mix[...] = jnp.asarray(kernel), jnp.asarray(mix)
    q, k, v = (jnp.asarray(rng.standard_normal((1, t, 2, 16)), jnp.float32) for _ in range(3))
    got = layer.attend_cached(q, k, v, x=None, offset=0, rng=None, decode=False)

    causal = np.tril(np.ones((t, t), bool))
    logits = np.einsum("thd,shd->hts", q[0], k[0]) / 4.0 * causal
    padded = np.pad(logits, ((0, 0), (cq - 1, 0), (ck // 2, ck // 2)))
    conv = np.zeros_like(logits)
    for h in range(2):
        for i in range(t):
            for j in range(t):
                conv[h, i, j] = np.sum(kernel[h] * padded[h, i : i + cq, j : j + ck])
    mixed = np.einsum("gh,hts->gts", mix, conv)
    mixed = np.where(causal, mixed, -np.inf)
    probs = np.exp(mixed - mixed.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    want = np.einsum("hts,shd->thd", probs, v[0])
    np.testing.assert_allclose(got[0], want, atol=1e-5)
