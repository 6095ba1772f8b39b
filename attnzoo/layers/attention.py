"""``attend``: the one scaled dot-product attention function every family calls.

Shapes: q ``[b, t, hq, d]``, k ``[b, s, hkv, d]``, v ``[b, s, hkv, dv]`` -> ``[b, t, hq, dv]``.
Grouped-query attention when ``hq`` is a multiple of ``hkv``: query head ``i`` reads kv head
``i // (hq // hkv)``. Masks are the structured objects of :mod:`attnzoo.layers.masks`
(``None`` = full attention); their head axis, when not 1, counts query heads.

Numerics: logits and softmax in float32, output in ``q.dtype``. Masked logits take the large
finite :data:`MASK_VALUE` (never ``-inf``) and masked probabilities are zeroed, so a query row
with no allowed key outputs exactly 0 and has finite (zero) gradients. A ``-inf`` bias entry
masks its key the same way (a row whose bias is all ``-inf`` outputs 0, not NaN).

Implementations (``impl=``):

* ``"reference"``: pure jnp on the materialised ``[b, hq, t, s]`` mask. The oracle.
* ``"xla"``: pure jnp whose cost follows the mask's block lists, for every mask kind
  (:mod:`attnzoo.layers.blocked_attention`; query blocks in cache-sized chunks, so memory
  stays bounded); without a mask, or with a mask whose tiles
  cover at least :data:`DENSE_ENOUGH` of ``[T, S]`` (causal, short sequences), attention in
  cache-sized chunks with the mask evaluated per chunk
  (:mod:`attnzoo.layers.chunked_attention`); with routing finer than :data:`ROUTED_ROWS`
  query rows (MoBA's per-token blocks), each query's own key blocks packed into shared
  tiles (:mod:`attnzoo.layers.routed_attention`). With a ``bias`` it uses the reference math.
* ``"cudnn"``: ``jax.nn.dot_product_attention(implementation=None)`` (cuDNN on GPU when it
  can, XLA otherwise) for ``None``, ``Causal``, ``LocalWindow1D``,
  ``Causal() & LocalWindow1D`` and ``Dense``; other masks raise ``ValueError``. Unlike ours,
  its fully masked rows are not zeroed.
* ``"pallas"``: our block-sparse flash-attention kernels (:mod:`attnzoo.pallas_kernels`), one
  per backend for every mask kind: Triton on GPU, Mosaic on TPU; on CPU the Triton kernels
  run in interpret mode (slow, exact). No ``bias``; head dims 32..256.
* ``"auto"``: see :func:`resolve_impl`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo import pallas_kernels
from attnzoo.layers.blocked_attention import attend_blocked, group_heads, tile_fraction
from attnzoo.layers.chunked_attention import attend_chunked, query_buckets
from attnzoo.layers.masks import (
    And,
    Causal,
    Dense,
    LocalWindow1D,
    Mask,
    Pointwise,
    dense_mask,
    tile_lists,
)
from attnzoo.layers.routed_attention import attend_routed, routing_of

__all__ = [
    "IMPLS",
    "MASK_VALUE",
    "attend",
    "attention_weights",
    "cudnn_accepts",
    "resolve_impl",
]

MASK_VALUE = pallas_kernels.MASK_VALUE
IMPLS = ("auto", "reference", "xla", "cudnn", "pallas")
# impl="xla": a mask whose tiles cover at least this fraction of [T, S] runs the chunked dense
# path with the mask evaluated in each chunk (cheaper than gathering tiles), in query buckets
# that skip the keys no query of a bucket sees (causal from 512 tokens: ~0.6x of full).
# Measured fwd+bwd (benchmarks/README.md): causal masks (>= 0.53 of the tiles) run faster
# chunked at every length from 256 to 8k tokens; windows covering <= 1/3 run faster blocked.
DENSE_ENOUGH = 0.5
# A block-sparse mask routed per fewer query rows than this runs routed_attention (query,
# block) pairs packed into tiles: the tile path would do matrix-vector products over
# gathered keys (MoBA layers fwd+bwd 5-8x slower, 256 to 4k tokens; benchmarks/README.md).
ROUTED_ROWS = 8


# ----------------------------------------------------------------------------- checks


def _check_inputs(q, k, v, mask, bias) -> None:
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(
            "attend expects q [b, t, hq, d], k [b, s, hkv, d], v [b, s, hkv, dv]; got shapes "
            f"q={q.shape}, k={k.shape}, v={v.shape}"
        )
    b, t, hq, d = q.shape
    if k.shape[0] != b or v.shape[0] != b or k.shape[:3] != v.shape[:3] or k.shape[3] != d:
        raise ValueError(
            "attend shape mismatch: need q [b, t, hq, d], k [b, s, hkv, d], v [b, s, hkv, dv]; "
            f"got q={q.shape}, k={k.shape}, v={v.shape}"
        )
    hkv = k.shape[2]
    if hq % hkv:
        raise ValueError(
            f"query heads ({hq}) must be a multiple of kv heads ({hkv}); q={q.shape}, k={k.shape}"
        )
    s = k.shape[1]
    if mask is not None:
        if not isinstance(mask, Mask):
            raise TypeError(
                f"mask must be an attnzoo.layers.masks.Mask or None (wrap arrays in Dense), "
                f"got {type(mask).__name__}"
            )
        mask.check(t, s)
        mb, mh = mask.leading_shape()
        if mb not in (1, b) or mh not in (1, hq):
            raise ValueError(
                f"mask batch/head dims ({mb}, {mh}) must be 1 or match (b, hq)=({b}, {hq})"
            )
    if bias is not None:
        want = (b, hq, t, s)
        if bias.ndim != 4 or any(x not in (1, w) for x, w in zip(bias.shape, want, strict=True)):
            raise ValueError(f"bias shape {bias.shape} does not broadcast to [b, hq, t, s]={want}")


# ----------------------------------------------------------------------------- reference math


def _masked_softmax(logits: jax.Array, allowed: jax.Array | None) -> jax.Array:
    """float32 softmax over the last axis; disallowed entries get probability exactly 0."""
    if allowed is None:
        return jax.nn.softmax(logits, axis=-1)
    logits = jnp.where(allowed, logits, MASK_VALUE)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    p = jnp.where(allowed, jnp.exp(logits - m), 0.0)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(denom > 0, denom, 1.0)


def _probabilities(q, k, mask, scale, bias) -> jax.Array:
    """float32 ``[b, hkv, g, t, s]`` attention probabilities on the dense mask."""
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    qg = q.reshape(b, t, hkv, hq // hkv, d)  # [b, t, hkv, g, d]
    logits = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
    logits = logits * scale  # [b, hkv, g, t, s]
    allowed = None if mask is None else group_heads(dense_mask(mask, t, s), hkv)
    if bias is not None:
        bias = group_heads(bias.astype(jnp.float32), hkv)
        logits = logits + bias
        reachable = bias > -jnp.inf  # a -inf bias masks its key: an all -inf row outputs 0
        allowed = reachable if allowed is None else allowed & reachable
    return _masked_softmax(logits, allowed)


def _attend_reference(q, k, v, mask, scale, bias) -> jax.Array:
    b, t, hq, _ = q.shape
    p = _probabilities(q, k, mask, scale, bias)  # [b, hkv, g, t, s]
    out = jnp.einsum("bkgts,bskd->btkgd", p, v.astype(jnp.float32))  # [b, t, hkv, g, dv]
    return out.reshape(b, t, hq, v.shape[-1]).astype(q.dtype)


def attention_weights(q, k, *, mask=None, scale=None, bias=None) -> jax.Array:
    """float32 attention probabilities ``[b, hq, t, s]`` (same math as ``impl="reference"``)."""
    _check_inputs(q, k, k, mask, bias)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    p = _probabilities(q, k, mask, scale, bias)  # [b, hkv, g, t, s]
    return p.reshape(p.shape[0], -1, *p.shape[3:])


# ----------------------------------------------------------------------------- cudnn


def _cudnn_args(mask: Mask | None, t: int, s: int) -> dict | None:
    """``jax.nn.dot_product_attention`` keyword args expressing ``mask``, or None."""
    if mask is None:
        return {}
    if isinstance(mask, Causal):
        if _static_offset(mask) == 0:
            return {"is_causal": True}
        return {"mask": mask.materialize(t, s)}
    if isinstance(mask, LocalWindow1D) and _static_offset(mask) == 0:
        return {"local_window_size": (mask.left, mask.right)}
    if isinstance(mask, Dense):
        return {"mask": mask.materialize(t, s)}
    if isinstance(mask, And) and len(mask.masks) == 2:
        a, b = mask.masks
        if isinstance(b, Causal):
            a, b = b, a
        if (
            isinstance(a, Causal)
            and _static_offset(a) == 0
            and isinstance(b, LocalWindow1D)
            and _static_offset(b) == 0
        ):
            return {"is_causal": True, "local_window_size": (b.left, b.right)}
    return None


def _attend_cudnn(q, k, v, mask, scale, bias) -> jax.Array:
    t, s = q.shape[1], k.shape[1]
    kwargs = _cudnn_args(mask, t, s)
    if kwargs is None:
        raise ValueError(
            f"impl='cudnn' cannot express mask {mask!r}; it supports None, Causal, "
            "LocalWindow1D, Causal() & LocalWindow1D and Dense. Use impl='xla' or 'reference'."
        )
    if not cudnn_accepts(q, k, v):
        raise ValueError(
            "impl='cudnn' needs one head_dim and dtype for q, k, v; got "
            f"q={q.shape} {q.dtype}, k={k.shape} {k.dtype}, v={v.shape} {v.dtype}"
        )
    return jax.nn.dot_product_attention(
        q, k, v, bias=bias, scale=scale, implementation=None, **kwargs
    )


# ----------------------------------------------------------------------------- dispatch


def _static_offset(m) -> int | None:
    off = m.offset
    return int(off) if isinstance(off, int | np.integer) else None


def _attend_xla(q, k, v, mask, scale, bias) -> jax.Array:
    if bias is not None:
        return _attend_reference(q, k, v, mask, scale, bias)
    if mask is None:
        return attend_chunked(q, k, v, scale)
    t, s = q.shape[1], k.shape[1]
    multiple = mask.block_multiple()
    if multiple is not None and multiple[0] < ROUTED_ROWS:
        return attend_routed(q, k, v, scale, *routing_of(mask))
    if tile_fraction(mask, t, s) >= DENSE_ENOUGH:
        buckets = query_buckets(mask, t, s)
        return attend_chunked(q, k, v, scale, mask.pointwise_rows(t), buckets=buckets)
    return attend_blocked(q, k, v, mask, scale)


def pallas_args(mask: Mask | None, q_len: int, kv_len: int) -> dict:
    """Keyword arguments of the pallas kernels for ``mask``: its pointwise form, tile lists and
    blocks, and which backend's kernels run (on CPU the GPU kernels, interpreted)."""
    backend = jax.default_backend()
    kernels = backend if backend in pallas_kernels.BACKENDS else "gpu"
    multiple = None if mask is None else mask.block_multiple()
    bq, bk = pallas_kernels.choose_blocks(kernels, q_len, kv_len, multiple)
    pw = Pointwise(lambda q_pos, k_pos: q_pos >= 0, ()) if mask is None else mask.pointwise()
    return dict(
        fn=pw.fn,
        operands=pw.operands,
        lists=tile_lists(mask, q_len, kv_len, bq, bk),
        block_q=bq,
        block_k=bk,
        backend=kernels,
        interpret=kernels != backend,
    )


def _attend_pallas(q, k, v, mask, scale, bias) -> jax.Array:
    if bias is not None:
        raise ValueError("impl='pallas' takes no bias; use impl='xla' or 'reference'")
    return pallas_kernels.flash_attention(
        q, k, v, scale=scale, **pallas_args(mask, q.shape[1], k.shape[1])
    )


def cudnn_accepts(q, k, v) -> bool:
    """Whether ``impl="cudnn"`` takes these inputs: one head_dim and one dtype for q, k, v."""
    return v.shape[-1] == q.shape[-1] and q.dtype == k.dtype == v.dtype


def resolve_impl(
    mask: Mask | None,
    *,
    bias=None,
    backend: str | None = None,
    head_dims: tuple[int, int] | None = None,
    cudnn_ok: bool = True,
) -> str:
    """The implementation ``impl="auto"`` runs, in order of preference:

    1. ``"cudnn"`` on gpu for no mask or ``Causal(0)`` (jax's fused kernels), without a bias
       (ours zeroes all ``-inf`` rows, cuDNN's would be NaN) and when ``cudnn_ok`` (the
       inputs pass :func:`cudnn_accepts`);
    2. ``"pallas"`` on gpu/tpu without bias when the head dims (q/k, v) fit the kernels;
    3. ``"xla"`` without bias (cost follows the block lists; no mask: cache-sized chunks);
    4. ``"reference"`` otherwise.
    """
    backend = jax.default_backend() if backend is None else backend
    plain = mask is None or (isinstance(mask, Causal) and _static_offset(mask) == 0)
    if backend == "gpu" and plain and bias is None and cudnn_ok:
        return "cudnn"
    lo, hi = pallas_kernels.HEAD_DIMS
    dims_ok = head_dims is None or all(lo <= x <= hi for x in head_dims)
    if backend in pallas_kernels.BACKENDS and bias is None and dims_ok:
        return "pallas"
    if bias is None:
        return "xla"
    return "reference"


def attend(
    q,
    k,
    v,
    *,
    mask: Mask | None = None,
    scale: float | None = None,
    impl: str = "auto",
    bias: jax.Array | None = None,
) -> jax.Array:
    """Scaled dot-product attention ``softmax(q k^T * scale + bias, masked) v``.

    Args:
      q: ``[b, t, hq, d]``.
      k: ``[b, s, hkv, d]`` with ``hq % hkv == 0`` (GQA / MQA).
      v: ``[b, s, hkv, dv]``.
      mask: a :class:`~attnzoo.layers.masks.Mask` or ``None`` (full attention).
      scale: logit scale, default ``d ** -0.5``.
      impl: ``"auto" | "reference" | "xla" | "cudnn" | "pallas"`` (module docstring).
      bias: optional additive logits ``[b|1, hq|1, t|1, s|1]``.

    Returns:
      ``[b, t, hq, dv]`` in ``q.dtype``; rows with no allowed key are 0.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; valid: {', '.join(IMPLS)}")
    _check_inputs(q, k, v, mask, bias)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if impl == "auto":
        impl = resolve_impl(
            mask,
            bias=bias,
            head_dims=(q.shape[-1], v.shape[-1]),
            cudnn_ok=cudnn_accepts(q, k, v),
        )
    if impl == "pallas":
        return _attend_pallas(q, k, v, mask, scale, bias)
    if impl == "cudnn":
        return _attend_cudnn(q, k, v, mask, scale, bias)
    if impl == "xla":
        return _attend_xla(q, k, v, mask, scale, bias)
    return _attend_reference(q, k, v, mask, scale, bias)
