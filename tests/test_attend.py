"""``attend``: reference vs jax.nn.dot_product_attention, every impl vs reference, errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnzoo.layers import attention, blocked_attention
from attnzoo.layers.attention import (
    attend,
    attention_weights,
    resolve_impl,
)
from attnzoo.layers.masks import (
    BlockSparse,
    Causal,
    Dense,
    LocalWindow1D,
    LocalWindow2D,
    Segments,
)


def normal(shape, seed=0):
    # numpy RNG: jax.random compiles a threefry program per shape, slow on 2 CPU cores
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def qkv(b=2, t=24, s=24, hq=4, hkv=2, d=8, dv=None, seed=0):
    q = normal((b, t, hq, d), seed)
    k = normal((b, s, hkv, d), seed + 100)
    v = normal((b, s, hkv, d if dv is None else dv), seed + 200)
    return q, k, v


# Tiny shapes: XLA's backend optimisations cost seconds of compile and save nothing here.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


@functools.partial(fast_jit, static_argnames=("impl",))
def run(q, k, v, mask, impl, bias=None):
    return attend(q, k, v, mask=mask, impl=impl, bias=bias)


@functools.partial(fast_jit, static_argnames=("impl",))
def run_grads(q, k, v, mask, impl, cot):
    """(out, (dq, dk, dv)) for the loss sum(out * cot)."""
    out, vjp = jax.vjp(lambda q, k, v: attend(q, k, v, mask=mask, impl=impl), q, k, v)
    return out, vjp(cot)


@functools.partial(fast_jit, static_argnames=("is_causal",))
def jax_sdpa(q, k, v, mask=None, bias=None, is_causal=False):
    """Independent oracle: jax's own XLA attention."""
    return jax.nn.dot_product_attention(
        q, k, v, bias=bias, mask=mask, is_causal=is_causal, implementation="xla"
    )


def np_local1d(t, s, left, right):
    i, j = np.arange(t)[:, None], np.arange(s)[None, :]
    return (j >= i - left) & (j <= i + right)


# ----------------------------------------------------------------------------- reference


@pytest.mark.parametrize(
    "case",
    ["none", "causal", "causal_t_ne_s", "gqa_hkv2", "gqa_hkv1", "mha", "local", "segments", "bias"],
)
def test_reference_matches_jax_nn(case):
    hkv = {"gqa_hkv1": 1, "mha": 4}.get(case, 2)
    t, s = (10, 16) if case == "causal_t_ne_s" else (12, 12)
    q, k, v = qkv(t=t, s=s, hkv=hkv)
    mask, kwargs = None, {}
    if case.startswith("causal"):
        mask, kwargs = Causal(), {"is_causal": True}
    elif case == "local":
        mask, kwargs = LocalWindow1D(3, 1), {"mask": jnp.asarray(np_local1d(t, s, 3, 1))}
    elif case == "segments":
        ids = np.array([[0] * 5 + [1] * 7, [0] * 2 + [1] * 6 + [2] * 4])
        mask = Segments(jnp.asarray(ids))
        kwargs = {"mask": jnp.asarray(ids[:, None, :, None] == ids[:, None, None, :])}
    elif case == "bias":
        kwargs = {"bias": normal((1, 4, t, s), 7)}
    got = run(q, k, v, mask, "reference", bias=kwargs.get("bias"))
    want = jax_sdpa(q, k, v, **kwargs)
    assert got.shape == (2, t, 4, 8) and got.dtype == q.dtype
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


def test_reference_value_head_dim_and_scale():
    q, k, v = qkv(t=5, s=7, hq=2, hkv=1, d=4, dv=6)
    out = fast_jit(lambda q, k, v: attend(q, k, v, impl="reference", scale=0.3))(q, k, v)
    assert out.shape == (2, 5, 2, 6)
    # independent numpy: softmax(q k^T * scale) v with the kv head shared
    logits = np.einsum("bthd,bsd->bhts", q, k[:, :, 0]) * 0.3
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.einsum("bhts,bsd->bthd", p, v[:, :, 0]), atol=1e-5)


@pytest.mark.parametrize("impl, mask", [("reference", Causal()), ("xla", LocalWindow1D(3, 0))])
def test_bf16_attention_keeps_float32_logits(impl, mask):
    """bf16 q/k/v with large logits (|logit| ~ 10): f32 logits leave only the output's bf16
    rounding (~8e-3 here); logits rounded to bf16 would be off by ~8e-2."""
    q, k, v = qkv(t=16, s=16, d=32)
    q, k, v = (3 * q).astype(jnp.bfloat16), (3 * k).astype(jnp.bfloat16), v.astype(jnp.bfloat16)
    out = run(q, k, v, mask, impl)
    assert out.dtype == jnp.bfloat16
    want = run(*(x.astype(jnp.float32) for x in (q, k, v)), mask, "reference")
    np.testing.assert_allclose(out.astype(jnp.float32), want, atol=2e-2)


# ----------------------------------------------------------------------------- xla vs reference


def _xla_cases():
    rng = np.random.default_rng(0)
    shared = jnp.asarray(rng.integers(-1, 5, (2, 1, 5, 3)), jnp.int32)  # dupes and -1 slots
    per_head = jnp.asarray(rng.integers(-1, 5, (1, 4, 5, 2)), jnp.int32)
    ids = jnp.asarray(np.repeat(np.arange(4), 10)[None].repeat(2, 0))
    dense = jnp.asarray(rng.random((2, 1, 40, 40)) < 0.3)
    per_token = jnp.asarray(rng.integers(-1, 5, (2, 4, 40, 2)), jnp.int32)  # MoBA-like
    per_pair = jnp.asarray(rng.integers(-1, 5, (1, 4, 19, 3)), jnp.int32)
    return {
        # name: (t, s, mask, kv heads); query heads are 4
        "local": (40, 40, LocalWindow1D(3, 2), 2),
        "local_t_ne_s": (37, 45, LocalWindow1D(4, 6), 1),
        "causal": (40, 40, Causal(), 2),
        "causal_traced_offset": (21, 40, Causal(jnp.int32(19)), 2),
        "causal_local": (40, 40, Causal() & LocalWindow1D(5, 0), 2),
        "causal_offset_local": (21, 40, Causal(19) & LocalWindow1D(6, 3), 4),
        "segments_local": (40, 40, Segments(ids) & LocalWindow1D(3, 3), 1),
        "segments_causal": (40, 40, Segments(ids) & Causal(), 2),
        "dense": (40, 40, Dense(dense), 4),
        "sparse_shared": (37, 37, BlockSparse(8, 8, shared), 2),
        "sparse_per_head": (40, 35, BlockSparse(8, 8, per_head), 2),
        "sparse_per_head_mqa": (40, 35, BlockSparse(8, 8, per_head), 1),
        "sparse_causal": (37, 37, BlockSparse(8, 8, shared) & Causal(), 1),
        "routed_per_token_causal": (40, 40, Causal() & BlockSparse(1, 8, per_token), 2),
        "routed_per_pair": (37, 37, BlockSparse(2, 8, per_pair), 2),
        "local2d": (36, 36, LocalWindow2D((6, 6), 1), 2),
        "local2d_window_first": (36, 36, LocalWindow2D((6, 6), 1, window=(3, 3)), 2),
    }


@pytest.mark.parametrize("path", ["dispatched", "blocked"])
@pytest.mark.parametrize("name", list(_xla_cases()))
def test_xla_matches_reference(name, path, monkeypatch):
    """impl="xla" as dispatched (these short sequences run chunked unless the mask is
    block-sparse with few tiles) and with every mask forced through the tile path (one or
    two query blocks per chunk)."""
    if path == "blocked":
        monkeypatch.setattr(attention, "DENSE_ENOUGH", float("inf"))
        monkeypatch.setattr(attention, "ROUTED_ROWS", 0)
        monkeypatch.setattr(blocked_attention, "CHUNK_BYTES", 8 * 1024)
    jax.clear_caches()  # the path is chosen at trace time: no cache hit from the other path
    t, s, mask, hkv = _xla_cases()[name]
    q, k, v = qkv(t=t, s=s, hkv=hkv, seed=hkv)
    cot = normal((2, t, 4, 8), 3)
    got, got_grads = run_grads(q, k, v, mask, "xla", cot)
    want, want_grads = run_grads(q, k, v, mask, "reference", cot)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


def _max_intermediate(closed_jaxpr) -> int:
    """Largest array (elements) produced anywhere in a jaxpr, sub-jaxprs included."""
    best = 0

    def walk(jaxpr):
        nonlocal best
        for eqn in jaxpr.eqns:
            for var in eqn.outvars:
                best = max(best, int(np.prod(getattr(var.aval, "shape", ()))))
            for p in eqn.params.values():
                for sub in p if isinstance(p, tuple | list) else (p,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        walk(sub)

    walk(closed_jaxpr.jaxpr)
    return best


@pytest.mark.parametrize(
    "kind,t,fraction",
    [("local", 1024, 1 / 4), ("block_sparse", 1024, 1 / 4), ("causal", 4096, 0.6),
     ("local2d", 1024, 0.2)],
)  # fmt: skip
def test_xla_memory_follows_mask(kind, t, fraction):
    b, hq = 1, 2
    q, k, v = qkv(b=b, t=t, s=t, hq=hq, hkv=1)
    if kind == "local":
        mask = Causal() & LocalWindow1D(7, 0)
    elif kind == "block_sparse":
        idx = jnp.zeros((1, 1, t // 16, 2), jnp.int32).at[..., 1].set(jnp.arange(t // 16))
        mask = BlockSparse(16, 16, idx) & Causal()
    elif kind == "causal":
        mask = Causal()
    else:
        mask = LocalWindow2D((32, 32), 2, window=(4, 4))
    full_logits = b * hq * t * t
    xla = jax.make_jaxpr(lambda q, k, v: attend(q, k, v, mask=mask, impl="xla"))(q, k, v)
    ref = jax.make_jaxpr(lambda q, k, v: attend(q, k, v, mask=mask, impl="reference"))(q, k, v)
    assert _max_intermediate(ref) >= full_logits
    assert _max_intermediate(xla) <= full_logits * fraction


def test_xla_tile_path_memory_is_bounded_by_its_chunks(monkeypatch):
    """Query blocks run in chunks of about CHUNK_BYTES of scores: nothing, forward or
    backward, grows past that (all listed tiles at once would be ~4x more here)."""
    monkeypatch.setattr(blocked_attention, "CHUNK_BYTES", 2**18)
    mask = LocalWindow2D((32, 32), 2, window=(4, 4))
    q, k, v = qkv(b=1, t=1024, s=1024, hq=2, hkv=1)

    def loss(q, k, v):
        return attend(q, k, v, mask=mask, impl="xla").sum()

    limit = blocked_attention.CHUNK_BYTES // 4
    assert _max_intermediate(jax.make_jaxpr(loss)(q, k, v)) <= limit
    assert _max_intermediate(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)) <= limit


# ----------------------------------------------------------------------------- cudnn


@pytest.mark.parametrize(
    "mask",
    [
        None,
        Causal(),
        Causal(3),
        LocalWindow1D(2, 3),
        Causal() & LocalWindow1D(4, 0),
        LocalWindow1D(4, 0) & Causal(),
        Dense(jnp.asarray(np_local1d(16, 16, 5, 5))),
    ],
    ids=["none", "causal", "causal_offset", "local", "causal_local", "local_causal", "dense"],
)
def test_cudnn_matches_reference(mask):
    q, k, v = qkv(t=16, s=16)
    np.testing.assert_allclose(
        run(q, k, v, mask, "cudnn"), run(q, k, v, mask, "reference"), atol=2e-6, rtol=1e-5
    )


def test_cudnn_rejects_what_it_cannot_express():
    q, k, v = qkv(t=8, s=8)
    with pytest.raises(ValueError, match="cannot express.*Segments"):
        attend(q, k, v, mask=Segments(jnp.zeros((2, 8), jnp.int32)), impl="cudnn")
    with pytest.raises(ValueError, match="cannot express"):
        attend(q, k, v, mask=BlockSparse(4, 4, jnp.zeros((1, 1, 2, 1), jnp.int32)), impl="cudnn")
    q, k, v = qkv(t=8, s=8, dv=4)
    with pytest.raises(ValueError, match="head_dim"):
        attend(q, k, v, impl="cudnn")


# ----------------------------------------------------------------------------- empty rows


def _empty_row_cases():
    dense = np.ones((16, 16), bool)
    dense[[0, 5, 11]] = False
    sparse_idx = jnp.array([[[[1, 0], [-1, -1], [1, -1], [-1, -1]]]], jnp.int32)
    return {
        "dense": (Dense(jnp.asarray(dense)), [0, 5, 11]),
        "causal_local": (Causal(-3) & LocalWindow1D(4, 2), [0, 1, 2]),
        "block_sparse": (BlockSparse(4, 4, sparse_idx), [4, 5, 6, 7, 12, 13, 14, 15]),
    }


@pytest.mark.parametrize("name", list(_empty_row_cases()))
@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_fully_masked_rows_are_zero_with_finite_grads(name, impl):
    mask, rows = _empty_row_cases()[name]
    q, k, v = qkv(t=16, s=16)
    out, grads = run_grads(q, k, v, mask, impl, jnp.ones((2, 16, 4, 8)))
    np.testing.assert_array_equal(out[:, rows], 0.0)
    assert np.isfinite(out).all() and np.abs(np.delete(np.asarray(out), rows, 1)).sum() > 0
    for g in grads:
        assert np.isfinite(g).all()
    np.testing.assert_array_equal(grads[0][:, rows], 0.0)  # dq of an empty row
    if impl != "reference":
        _, want = run_grads(q, k, v, mask, "reference", jnp.ones((2, 16, 4, 8)))
        for g, w in zip(grads, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- weights


def test_attention_weights():
    q, k, v = qkv(t=9, s=9, hq=4, hkv=2)
    w = fast_jit(lambda q, k: attention_weights(q, k, mask=Causal()))(q, k)
    assert w.shape == (2, 4, 9, 9) and w.dtype == jnp.float32
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert (np.asarray(w)[:, :, np.triu_indices(9, 1)[0], np.triu_indices(9, 1)[1]] == 0).all()
    v_per_head = jnp.repeat(v, 2, axis=2)  # query head i reads kv head i // 2
    out = np.einsum("bhts,bshd->bthd", w, v_per_head)
    np.testing.assert_allclose(out, run(q, k, v, Causal(), "reference"), atol=1e-6)


# ----------------------------------------------------------------------------- dispatch/errors


def test_resolve_impl_rules():
    sparse = BlockSparse(4, 4, jnp.zeros((1, 1, 4, 1), jnp.int32))
    bias = jnp.zeros((1, 1, 1, 1))
    # cpu: never pallas; without bias -> xla (block lists; no mask: cache-sized chunks)
    assert resolve_impl(None, backend="cpu") == "xla"
    for mask in (Causal(), LocalWindow1D(2, 0), sparse, LocalWindow2D((4, 4), 1)):
        assert resolve_impl(mask, backend="cpu") == "xla"
    assert resolve_impl(LocalWindow1D(2, 0), bias=bias, backend="cpu") == "reference"
    # gpu: cuDNN for plain/causal attention, our kernels for structured masks
    assert resolve_impl(None, backend="gpu") == "cudnn"
    assert resolve_impl(Causal(), backend="gpu") == "cudnn"
    assert resolve_impl(Causal(2), backend="gpu") == "pallas"
    assert resolve_impl(sparse, backend="gpu") == "pallas"
    assert resolve_impl(sparse, backend="gpu", head_dims=(16, 16)) == "xla"  # below 32
    assert resolve_impl(sparse, bias=bias, backend="gpu") == "reference"
    # tpu: our kernels for everything they take
    assert resolve_impl(None, backend="tpu") == "pallas"
    assert resolve_impl(Causal() & LocalWindow1D(2, 0), backend="tpu") == "pallas"
    assert resolve_impl(Causal(), backend="tpu", head_dims=(64, 512)) == "xla"


def test_auto_runs_and_matches_reference():
    q, k, v = qkv(t=40, s=40)
    mask = LocalWindow1D(3, 0)  # auto -> xla (blocked) on CPU
    np.testing.assert_allclose(
        run(q, k, v, mask, "auto"), run(q, k, v, mask, "reference"), atol=2e-6
    )


def test_pallas_on_cpu_runs_interpreted_kernels():
    q, k, v = qkv(b=1, t=20, s=20, hq=2, hkv=1, d=32)
    mask = Causal() & LocalWindow1D(6, 0)
    np.testing.assert_allclose(
        run(q, k, v, mask, "pallas"), run(q, k, v, mask, "reference"), atol=1e-5
    )


def test_pallas_refusals():
    q, k, v = qkv(t=8, s=8)  # head dim 8
    with pytest.raises(ValueError, match=r"head dims 32..256, got q/k head dim 8; use impl='xla'"):
        attend(q, k, v, impl="pallas")
    q, k, v = qkv(t=8, s=8, d=32)
    with pytest.raises(ValueError, match="impl='pallas' takes no bias"):
        attend(q, k, v, impl="pallas", bias=jnp.zeros((1, 1, 8, 8)))
    odd = BlockSparse(6, 6, jnp.zeros((1, 1, 2, 1), jnp.int32))
    with pytest.raises(ValueError, match="dividing the mask's block size 6; use impl='xla'"):
        attend(q, k, v, mask=odd, impl="pallas")


def test_errors():
    q, k, v = qkv(t=8, s=8)
    with pytest.raises(ValueError, match="valid: auto, reference, xla, cudnn, pallas"):
        attend(q, k, v, impl="flash")
    with pytest.raises(ValueError, match=r"q=\(2, 8, 4, 8\), k=\(2, 8, 2, 6\)"):
        attend(q, k[..., :6], v)
    with pytest.raises(ValueError, match=r"v=\(2, 7, 2, 8\)"):
        attend(q, k, v[:, :7])
    with pytest.raises(ValueError, match="multiple of kv heads"):
        attend(q[:, :, :3], k, v)
    with pytest.raises(ValueError, match="attend expects"):
        attend(q[0], k, v)
    with pytest.raises(ValueError, match="batch/head dims"):
        attend(q, k, v, mask=Dense(jnp.ones((3, 1, 8, 8), bool)))
    with pytest.raises(ValueError, match="Dense mask"):
        attend(q, k, v, mask=Dense(jnp.ones((8, 9), bool)))
    with pytest.raises(ValueError, match="bias shape"):
        attend(q, k, v, bias=jnp.zeros((2, 3, 8, 8)))
    with pytest.raises(TypeError, match="wrap arrays in Dense"):
        attend(q, k, v, mask=jnp.ones((8, 8), bool))


# ----------------------------------------------------------------------------- reliability


@pytest.mark.parametrize("impl", ["reference", "xla", "auto"])
def test_all_minus_inf_bias_row_is_zero_not_nan(impl):
    q, k, v = qkv(t=8, s=8)
    bias = np.zeros((1, 1, 8, 8), np.float32)
    bias[..., 3, :] = -np.inf  # query row 3 may see no key
    bias[..., 5, :4] = -np.inf  # row 5 sees keys 4..7 only
    out = run(q, k, v, None, impl, jnp.asarray(bias))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 3], 0.0)
    allowed = np.ones((8, 8), bool)
    allowed[5, :4] = False
    want = jax_sdpa(q, k, v, mask=jnp.asarray(allowed))  # independent oracle for row 5
    np.testing.assert_allclose(out[:, 5], want[:, 5], atol=2e-6)
    grads = jax.grad(lambda q: attend(q, k, v, bias=jnp.asarray(bias), impl=impl).sum())(q)
    assert np.isfinite(grads).all()
    np.testing.assert_array_equal(grads[:, 3], 0.0)


def test_auto_picks_cudnn_only_for_inputs_it_takes(monkeypatch):
    """On a (faked) GPU, `auto` must not pick cudnn for a v head_dim other than q's, mixed
    dtypes or a bias; it still does for plain inputs."""
    chosen = []
    monkeypatch.setattr(attention.jax, "default_backend", lambda: "gpu")
    for name in ("_attend_cudnn", "_attend_reference", "_attend_xla", "_attend_pallas"):
        real = getattr(attention, name)

        def spy(*args, _real=real, _name=name):
            chosen.append(_name)
            return _real(*args)

        monkeypatch.setattr(attention, name, spy)

    q, k, v = qkv(t=8, s=8)
    attend(q, k, v)
    assert chosen == ["_attend_cudnn"]
    cases = {
        "value head_dim": qkv(t=8, s=8, dv=4),
        "mixed dtypes": (q, k.astype(jnp.bfloat16), v),
    }
    for name, (q2, k2, v2) in cases.items():
        chosen.clear()
        out = attend(q2, k2, v2, mask=Causal())
        assert chosen and "_attend_cudnn" not in chosen, name
        want = attend(q2, k2, v2, mask=Causal(), impl="reference")
        np.testing.assert_allclose(
            np.asarray(out, np.float32), np.asarray(want, np.float32), rtol=1e-5, atol=1e-6
        )
    chosen.clear()
    attend(q, k, v, bias=jnp.zeros((1, 1, 8, 8)))
    assert chosen == ["_attend_reference"]
    assert resolve_impl(None, backend="gpu", cudnn_ok=False, head_dims=(8, 4)) == "xla"
    assert resolve_impl(None, backend="gpu", cudnn_ok=False, head_dims=(64, 32)) == "pallas"
