"""MultiHeadAttention (NNX) and RoPE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from attnzoo.layers.masks import Causal, LocalWindow1D
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.rope import apply_rope, rope_frequencies


@pytest.fixture(autouse=True)
def _no_eager_sharding():
    # Params carry logical names; without a mesh they must not be sharded at creation.
    with nnx.use_eager_sharding(False):
        yield


rope = jax.jit(apply_rope, static_argnames=("base", "fraction"))


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# ----------------------------------------------------------------------------- RoPE


def np_rope(x, pos, base=10000.0):
    """Independent definition: channel pair (i, i + d/2) as a complex number times e^{i p w_i}."""
    half = x.shape[-1] // 2
    w = base ** (-np.arange(half) * 2.0 / x.shape[-1])
    z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * pos[None, :, None, None] * w)
    return np.concatenate([z.real, z.imag], axis=-1)


def test_rope_matches_complex_rotation_and_preserves_norm():
    x = normal((2, 7, 3, 8))
    pos = np.array([0, 1, 2, 5, 9, 100, 3])
    got = rope(x, jnp.asarray(pos))
    np.testing.assert_allclose(got, np_rope(np.asarray(x, np.float64), pos), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    # [b, t] positions broadcast like [t]
    np.testing.assert_allclose(rope(x, jnp.asarray(np.tile(pos, (2, 1)))), got, atol=1e-6)
    np.testing.assert_allclose(rope_frequencies(8), 10000.0 ** (-np.arange(4) / 4), rtol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    d, n = 16, 12
    q = jnp.broadcast_to(normal((d,), 1), (1, n, 1, d))  # same vector at every position
    k = jnp.broadcast_to(normal((d,), 2), (1, n, 1, d))
    pos = jnp.arange(n)
    qr, kr = np.asarray(rope(q, pos))[0, :, 0], np.asarray(rope(k, pos))[0, :, 0]
    scores = qr @ kr.T  # scores[m, n] = <rope(q, m), rope(k, n)>
    for shift in (1, 3, 5):
        np.testing.assert_allclose(scores[shift:, shift:], scores[:-shift, :-shift], atol=1e-4)
    assert np.abs(scores[0, 1] - scores[0, 4]) > 1e-3  # but it does depend on m - n


def test_rope_fraction_leaves_tail_untouched():
    x = normal((1, 5, 2, 12))
    got = rope(x, jnp.arange(5), fraction=0.5)  # rotates the first 6 channels
    np.testing.assert_array_equal(got[..., 6:], x[..., 6:])
    np.testing.assert_allclose(got[..., :6], rope(x[..., :6], jnp.arange(5)), atol=1e-6)
    with pytest.raises(ValueError, match="fraction"):
        rope(x, jnp.arange(5), fraction=0.0)


# ----------------------------------------------------------------------------- MHA


def make(**kw):
    # One shared configuration (GQA 4 -> 2 heads of 4) keeps eager compiles cached across tests.
    kw = {"in_features": 16, "num_heads": 4, "num_kv_heads": 2, **kw}
    return MultiHeadAttention(rngs=nnx.Rngs(0), **kw)


@nnx.jit
def apply(mha, x, context, mask):
    return mha(x, context=context, mask=mask)


def test_output_shape_and_cross_attention():
    mha = make(out_features=24)
    x, ctx = normal((2, 8, 16)), normal((2, 9, 16), 1)
    assert apply(mha, x, None, None).shape == (2, 8, 24)
    assert apply(mha, x, ctx, None).shape == (2, 8, 24)
    y = apply(mha, x, None, LocalWindow1D(1, 1))
    assert y.shape == (2, 8, 24) and np.isfinite(y).all()
    np.testing.assert_allclose(mha(x, mask=LocalWindow1D(1, 1)), y, atol=1e-5)  # eager = jit


def test_self_attention_matches_the_definition():
    """softmax(q k^T / sqrt(d)) v with q = x Wq + bq, ... (GQA: kv head = query head // 2),
    computed with numpy from the layer's params, against the layer (fused q/k/v matmul)."""
    mha = make()
    for m in (mha.query, mha.key, mha.value, mha.out):  # non-zero biases
        m.bias[...] = normal(m.bias[...].shape, 3)
    x = normal((2, 5, 16), 2)
    p = lambda m, name: np.asarray(getattr(m, name)[...], np.float64)
    xn = np.asarray(x, np.float64)
    q = np.einsum("bte,ehd->bthd", xn, p(mha.query, "kernel")) + p(mha.query, "bias")
    k = np.einsum("bte,ehd->bthd", xn, p(mha.key, "kernel")) + p(mha.key, "bias")
    v = np.einsum("bte,ehd->bthd", xn, p(mha.value, "kernel")) + p(mha.value, "bias")
    k, v = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(4)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhts,bshd->bthd", weights, v)
    expected = np.einsum("bthd,hde->bte", heads, p(mha.out, "kernel")) + p(mha.out, "bias")
    np.testing.assert_allclose(mha(x), expected, rtol=1e-4, atol=1e-5)


def np_rms_norm(x, scale, eps=1e-6):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * scale


@pytest.mark.parametrize("self_attention", [True, False], ids=["self", "cross"])
def test_qk_norm_rope_and_cross_attention_match_the_definition(self_attention):
    """q/k RMS-normalised over head_dim (learned scale), then rotated by RoPE at their own
    positions (complex-rotation definition), then GQA attention: numpy vs the layer."""
    mha = make(qk_norm=True, use_rope=True)
    for i, norm in enumerate((mha.query_norm, mha.key_norm)):
        norm.scale[...] = 1 + 0.5 * normal(norm.scale[...].shape, 10 + i)
    for m in (mha.query, mha.key, mha.value, mha.out):
        m.bias[...] = normal(m.bias[...].shape, 3)
    x = normal((2, 5, 16), 2)
    ctx = x if self_attention else normal((2, 7, 16), 4)
    got = mha(x) if self_attention else mha(x, context=ctx)

    p = lambda m, name: np.asarray(getattr(m, name)[...], np.float64)
    xn, cn = np.asarray(x, np.float64), np.asarray(ctx, np.float64)
    q = np.einsum("bte,ehd->bthd", xn, p(mha.query, "kernel")) + p(mha.query, "bias")
    k = np.einsum("bse,ehd->bshd", cn, p(mha.key, "kernel")) + p(mha.key, "bias")
    v = np.einsum("bse,ehd->bshd", cn, p(mha.value, "kernel")) + p(mha.value, "bias")
    q = np_rope(np_rms_norm(q, p(mha.query_norm, "scale")), np.arange(q.shape[1]))
    k = np_rope(np_rms_norm(k, p(mha.key_norm, "scale")), np.arange(k.shape[1]))
    k, v = np.repeat(k, 2, axis=2), np.repeat(v, 2, axis=2)
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(4)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = np.einsum("bhts,bshd->bthd", weights, v)
    expected = np.einsum("bthd,hde->bte", heads, p(mha.out, "kernel")) + p(mha.out, "bias")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_gqa_param_shapes_and_logical_axes():
    mha = make(head_dim=8, qk_norm=True)
    shapes = {
        "/".join(map(str, path)): v.shape
        for path, v in nnx.to_flat_state(nnx.state(mha, nnx.Param))
    }
    assert shapes == {
        "query/kernel": (16, 4, 8),
        "query/bias": (4, 8),
        "key/kernel": (16, 2, 8),
        "key/bias": (2, 8),
        "value/kernel": (16, 2, 8),
        "value/bias": (2, 8),
        "out/kernel": (4, 8, 16),
        "out/bias": (16,),
        "query_norm/scale": (8,),
        "key_norm/scale": (8,),
    }
    specs = nnx.get_partition_spec(nnx.state(mha, nnx.Param))
    assert specs["query"]["kernel"].get_value() == PartitionSpec("embed", "heads", "kv")
    assert specs["key"]["kernel"].get_value() == PartitionSpec("embed", "heads", "kv")
    assert specs["value"]["bias"].get_value() == PartitionSpec("heads", "kv")
    assert specs["out"]["kernel"].get_value() == PartitionSpec("heads", "kv", "embed")
    assert specs["out"]["bias"].get_value() == PartitionSpec("embed")
    assert specs["query_norm"]["scale"].get_value() == PartitionSpec("kv")
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        make(num_kv_heads=3)


def test_params_born_sharded_on_mesh():
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    rules = (("embed", None), ("heads", "model"), ("kv", None))
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules), nnx.use_eager_sharding(True):
        mha = nnx.jit(lambda: make(num_kv_heads=4, use_bias=False))()
    for kernel, spec in [
        (mha.query.kernel, (None, "model", None)),
        (mha.out.kernel, ("model", None, None)),
    ]:
        want = NamedSharding(mesh, PartitionSpec(*spec))
        assert kernel[...].sharding.is_equivalent_to(want, 3), kernel[...].sharding


def test_record_weights():
    x = normal((2, 8, 16))
    forward = nnx.capture(lambda m, x: m(x, mask=Causal()), nnx.Intermediate)
    y, inter = forward(make(record_weights=True), x)
    weights = inter["attention_weights"].get_value()
    assert isinstance(weights, tuple) and len(weights) == 1
    w = weights[0]
    assert w.shape == (2, 4, 8, 8)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(np.triu(np.asarray(w), 1), 0.0)
    y_off, inter_off = forward(make(), x)
    np.testing.assert_allclose(y_off, y, atol=1e-6)  # same params, same output
    assert not jax.tree.leaves(inter_off)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_qk_norm_runs(qk_norm):
    mha = make(qk_norm=qk_norm, use_rope=True)
    y = mha(normal((2, 8, 16)), mask=Causal())
    assert y.shape == (2, 8, 16) and np.isfinite(y).all()
    assert hasattr(mha.query_norm, "scale") == qk_norm


def test_kv_cache_decoding_equals_full_causal_forward():
    b, t, max_len = 2, 8, 10
    mha = make(use_rope=True, qk_norm=True)  # GQA: 4 query heads, 2 kv heads
    x = normal((b, t, 16), 3)
    full = mha(x, mask=Causal())

    mha.init_cache(b, max_len)
    assert mha.cached_key[...].shape == (b, max_len, 2, 4)
    step = nnx.jit(lambda m, x: m(x, decode=True))
    outs = [step(mha, x[:, :3])]  # prompt of 3 tokens
    for i in range(3, t):  # then one token at a time
        outs.append(step(mha, x[:, i : i + 1]))
    assert int(mha.cache_index[...]) == t
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=1e-5)


def test_decode_errors():
    mha = make()
    with pytest.raises(ValueError, match="init_cache"):
        mha(normal((1, 1, 16)), decode=True)
    mha.init_cache(1, 4)
    with pytest.raises(ValueError, match="self-attention only"):
        mha(normal((1, 1, 16)), context=normal((1, 3, 16)), decode=True)


def test_decode_past_max_length_raises():
    mha = make()
    mha.init_cache(1, 4)
    mha(normal((1, 3, 16)), decode=True)
    with pytest.raises(ValueError, match="KV cache overflow.*position 3.*max_length=4"):
        mha(normal((1, 2, 16)), decode=True)  # eager: slots 3, 4 of 4
    with pytest.raises(ValueError, match="KV cache overflow"):
        mha(normal((1, 5, 16)), decode=True)  # more tokens than the cache holds

    mha.init_cache(1, 4)
    step = nnx.jit(lambda m, x: m(x, decode=True))
    step(mha, normal((1, 2, 16)))
    step(mha, normal((1, 2, 16)))  # fills the cache exactly
    with pytest.raises(Exception, match="KV cache overflow"):  # jit: at run time
        jax.block_until_ready(step(mha, normal((1, 1, 16))))
