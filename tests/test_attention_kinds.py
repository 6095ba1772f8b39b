"""The causal self-attention kinds' shared contract, for every kind in the registry: no
position sees the future, KV-cache decoding equals the full forward (sliding windows
included), QK-Clip bounds the recomputed logits; MultiHeadAttention decodes sliding windows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.attention_kinds import ATTENTION_KINDS, attention_kind
from attnzoo.layers.causal_attention import MaxLogit
from attnzoo.layers.masks import Causal, LocalWindow1D
from attnzoo.layers.multi_head_attention import MultiHeadAttention

E, H, T = 32, 4, 8
KINDS = sorted(ATTENTION_KINDS)
OPTIONS = {  # tiny settings that exercise each kind's structure at T = 8
    "gda": {"noise_heads": 2},  # 2 groups of 2 signal heads
    "moba": {"block_size": 2, "top_k": 2},
    "moh": {"shared_heads": 1, "top_k": 2},
    "mta": {"query_kernel": 3, "key_kernel": 3, "head_norm": True, "output_gate": True},
    "ssa": {"block_size": 2, "local_blocks": 1, "random_blocks": 1},
}


@pytest.fixture(autouse=True)
def _no_eager_sharding():
    with nnx.use_eager_sharding(False):
        yield


def x_input(b=2, t=T, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((b, t, E)), jnp.float32)


@functools.cache
def layer(kind, window=None, num_kv_heads=2):
    return make(kind, window=window, num_kv_heads=num_kv_heads)


def make(kind, **kw):
    model = attention_kind(kind)(E, H, impl="xla", rngs=nnx.Rngs(0), **OPTIONS.get(kind, {}), **kw)
    if kind == "mta":  # leave the identity init, so the convolution and head mix matter
        rng = np.random.default_rng(2)
        for p in (model.conv_kernel, model.head_mix):
            p[...] = p[...] + jnp.asarray(0.3 * rng.standard_normal(p.shape), jnp.float32)
    return model


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="unknown attention kind 'flash'; valid kinds: dense"):
        attention_kind("flash")


@pytest.mark.parametrize("kind", KINDS)
def test_no_position_sees_the_future(kind):
    model = layer(kind)
    x = x_input(b=1)
    rng = jax.random.key(0) if kind == "ssa" else None  # SSA: its training (subsampled) path
    jac = jax.jit(jax.jacrev(lambda x: model(x, rng=rng)[0].sum(-1)))(x)[:, 0]  # [t, t, e]
    influence = np.abs(np.asarray(jac)).sum(-1)  # [t_out, t_in]
    future = np.triu(np.ones((T, T), bool), k=1)
    assert influence[future].max() == 0.0
    assert np.all(np.diag(influence) > 0.0)  # each position sees itself


forward = nnx.jit(lambda m, x: m(x))
decode_step = nnx.jit(lambda m, x: m(x, decode=True))
captured_forward = nnx.jit(nnx.capture(lambda m, x: m(x), MaxLogit))


@pytest.mark.parametrize("window", [None, 3], ids=["full", "window3"])
@pytest.mark.parametrize("kind", KINDS)
def test_decoding_equals_full_forward(kind, window):
    model = layer(kind, window)
    x = x_input()
    full = forward(model, x)
    model.init_cache(2, T + 3)
    parts = [decode_step(model, x[:, i : i + 1]) for i in range(T)]  # one compile
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=2e-5)
    assert int(model.cache_index[...]) == T


@pytest.mark.parametrize(
    "kind, num_kv_heads",
    [(kind, 2) for kind in KINDS] + [("dense", None)],
    ids=[f"{kind}-gqa" for kind in KINDS] + ["dense-mha"],
)
def test_qk_clip_bounds_every_head(kind, num_kv_heads):
    model = make(kind, num_kv_heads=num_kv_heads)
    x = 4.0 * x_input()
    before = captured_forward(model, x)[1]["max_logit"][0]
    assert before.shape == (H,) and before.dtype == jnp.float32
    tau = float(np.median(before))  # about half the heads get clipped
    model.qk_clip(before, tau)
    after = captured_forward(model, x)[1]["max_logit"][0]
    assert np.all(after <= tau * (1 + 1e-5))
    if num_kv_heads is None:  # own q and k heads: exactly to tau
        np.testing.assert_allclose(after, np.minimum(before, tau), rtol=1e-5)


def test_multi_head_attention_decodes_sliding_window():
    """Issue 7: the cache offset shifts the window (was max |diff| 3.4)."""
    model = MultiHeadAttention(E, H, use_rope=True, impl="xla", rngs=nnx.Rngs(0))
    mask = Causal() & LocalWindow1D(2, 0)
    x = x_input()
    full = nnx.jit(lambda m, x: m(x, mask=mask))(model, x)
    model.init_cache(2, T)
    step = nnx.jit(lambda m, x: m(x, mask=mask, decode=True))
    parts = [step(model, x[:, i : i + 2]) for i in range(0, T, 2)]  # cache offsets 0, 2, 4, 6
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, atol=2e-5)
