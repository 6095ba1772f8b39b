"""DIFF and GDA layers against their definition, recomputed in numpy from the layer's params."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.differential_attention import (
    DifferentialAttention,
    GroupedDifferentialAttention,
    lambda_init,
)


def test_lambda_init_by_depth():
    # DIFF Transformer: 0.8 - 0.6 exp(-0.3 depth); depths 0, 1, 2 as quoted in MODELS.md.
    want = [0.2, 0.35551, 0.47071, 0.55606, 0.61928, 0.66612]
    np.testing.assert_allclose([lambda_init(d) for d in range(6)], want, atol=1e-5)


def np_rope(x, pos, base=10000.0):
    """Rotate-half RoPE as complex rotation of channel pairs (i, i + d/2)."""
    half = x.shape[-1] // 2
    w = base ** (-np.arange(half) * 2.0 / x.shape[-1])
    z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * pos[None, :, None, None] * w)
    return np.concatenate([z.real, z.imag], axis=-1)


def np_causal_softmax(logits):
    t = logits.shape[-1]
    logits = np.where(np.tril(np.ones((t, t), bool)), logits, -np.inf)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize(
    "cls, h, h2, hkv", [(DifferentialAttention, 2, 2, 2), (GroupedDifferentialAttention, 4, 1, 1)]
)
def test_layer_matches_definition(cls, h, h2, hkv):
    e, t, depth = 32, 6, 3
    with nnx.use_eager_sharding(False):
        layer = cls(e, h, num_kv_heads=hkv, layer_index=depth, impl="reference", rngs=nnx.Rngs(0))
    assert layer.noise_heads == h2
    x = np.random.default_rng(0).standard_normal((1, t, e)).astype(np.float32)
    got = nnx.jit(lambda m, x: m(x))(layer, jnp.asarray(x))

    params = nnx.to_flat_state(nnx.state(layer, nnx.Param))
    p = {k: np.asarray(v[...], np.float64) for k, v in params}
    pos = np.arange(t)
    d = e // h // 2
    q = np_rope(np.einsum("bte,ehd->bthd", x, p[("query", "kernel")]), pos)
    k = np_rope(np.einsum("bte,ehd->bthd", x, p[("key", "kernel")]), pos)
    v = np.einsum("bte,ehd->bthd", x, p[("value", "kernel")])  # [b, t, hkv, 2d]
    lam = (
        np.exp(p[("lambda_q1",)] @ p[("lambda_k1",)])
        - np.exp(p[("lambda_q2",)] @ p[("lambda_k2",)])
        + 0.8
        - 0.6 * np.exp(-0.3 * depth)
    )
    heads = []
    for i in range(h):
        j = i // (h // h2)  # noise head of signal head i
        g = i // (h // hkv)  # kv group
        a1 = np_causal_softmax(q[0, :, i] @ k[0, :, g].T / np.sqrt(d))
        a2 = np_causal_softmax(q[0, :, h + j] @ k[0, :, hkv + g].T / np.sqrt(d))
        o = (a1 - lam * a2) @ v[0, :, g]  # [t, 2d]
        o = o / np.sqrt(np.mean(o**2, -1, keepdims=True) + 1e-5) * p[("head_norm", "scale")]
        heads.append(o * (1 - lambda_init(depth)))
    want = np.einsum("thd,hde->te", np.stack(heads, 1), p[("out", "kernel")])
    np.testing.assert_allclose(got[0], want, atol=2e-5)


def test_bad_grouping_is_one_line():
    with pytest.raises(ValueError, match="num_heads=4 is not a multiple of noise_heads=3"):
        GroupedDifferentialAttention(32, 4, noise_heads=3, rngs=nnx.Rngs(0))
