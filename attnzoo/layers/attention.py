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
* ``"xla"``: pure jnp whose cost follows the mask. ``LocalWindow1D`` (alone or ``&`` other
  masks, e.g. ``Causal``) runs blocked: each query block reads only its key window, gathered
  from padded keys. ``BlockSparse`` (alone or ``&`` positional masks) gathers, per query
  block, its selected key blocks. Anything else (or a ``bias``) uses the reference math.
* ``"cudnn"``: ``jax.nn.dot_product_attention(implementation=None)`` (cuDNN on GPU when it
  can, XLA otherwise) for ``None``, ``Causal``, ``LocalWindow1D``,
  ``Causal() & LocalWindow1D`` and ``Dense``; other masks raise ``ValueError``. Unlike ours,
  its fully masked rows are not zeroed.
* ``"pallas"``: kernels registered in :data:`PALLAS_IMPLS` (mask type -> function).
* ``"auto"``: see :func:`resolve_impl`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers.masks import (
    And,
    BlockSparse,
    Causal,
    Dense,
    LocalWindow1D,
    Mask,
    PositionalMask,
    dense_mask,
)

__all__ = [
    "IMPLS",
    "MASK_VALUE",
    "PALLAS_IMPLS",
    "attend",
    "attention_weights",
    "cudnn_accepts",
    "resolve_impl",
]

MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)
IMPLS = ("auto", "reference", "xla", "cudnn", "pallas")

# Mask type (``type(None)`` for no mask) -> ``fn(q, k, v, *, mask, scale, bias) -> out``.
# Filled by ``attnzoo.pallas_kernels``; ``attend`` never needs editing to add a kernel.
PALLAS_IMPLS: dict[type, Callable[..., jax.Array]] = {}

_PALLAS_MISSING = "pallas attention kernels are not implemented yet (see the kernels issue)"


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


def _group_heads(x: jax.Array, hkv: int) -> jax.Array:
    """``[B, H|1, ...]`` over query heads -> ``[B, hkv|1, g|1, ...]``."""
    if x.shape[1] == 1:
        return x[:, :, None]
    return x.reshape(x.shape[0], hkv, x.shape[1] // hkv, *x.shape[2:])


def _pad_axis1(x: jax.Array, before: int, after: int) -> jax.Array:
    pad = [(0, 0)] * x.ndim
    pad[1] = (before, after)
    return jnp.pad(x, pad)


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
    allowed = None if mask is None else _group_heads(dense_mask(mask, t, s), hkv)
    if bias is not None:
        bias = _group_heads(bias.astype(jnp.float32), hkv)
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


# ----------------------------------------------------------------------------- xla: structure


def _static_offset(m) -> int | None:
    off = m.offset
    return int(off) if isinstance(off, int | np.integer) else None


def _components(mask: Mask) -> tuple[Mask, ...]:
    return mask.masks if isinstance(mask, And) else (mask,)


def _band(mask: Mask) -> tuple[int, int] | None:
    """Static ``(left, right) >= 0`` with every allowed key of query i in [i-left, i+right]."""
    left = right = None
    for m in _components(mask):
        if isinstance(m, LocalWindow1D):
            left = m.left if left is None else min(left, m.left)
            right = m.right if right is None else min(right, m.right)
        elif isinstance(m, Causal) and _static_offset(m) is not None:
            right = _static_offset(m) if right is None else min(right, _static_offset(m))
    if left is None or right is None:
        return None
    return max(left, 0), max(right, 0)


def _local_block_q(t: int, left: int, right: int) -> int:
    """Query block ~ the window width (8..128): key reads stay <= ~2x the window's."""
    bq = 8
    while bq < left + right + 1 and bq < 128:
        bq *= 2
    return min(bq, t)


def _xla_plan(mask: Mask | None, bias, t: int, s: int):
    """How ``impl="xla"`` runs: ``("block_sparse", bs, others)``, ``("local", l, r, bq)``, or
    ``None`` (reference math)."""
    if mask is None or bias is not None:
        return None
    comps = _components(mask)
    sparse = [m for m in comps if isinstance(m, BlockSparse)]
    others = [m for m in comps if not isinstance(m, BlockSparse)]
    if len(sparse) == 1 and all(isinstance(m, PositionalMask) for m in others):
        return ("block_sparse", sparse[0], tuple(others))
    band = _band(mask)
    if band is not None:
        left, right = band
        bq = _local_block_q(t, left, right)
        if bq + left + right < s:  # otherwise the window is the whole sequence
            return ("local", left, right, bq)
    return None


def _attend_local(q, k, v, mask, scale, left, right, bq) -> jax.Array:
    """Blocked banded attention: query block n reads keys [n*bq - left, n*bq + bq + right)."""
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g = hq // hkv
    nq = -(-t // bq)
    w = bq + left + right  # key window per query block
    m = -(-w // bq)  # key blocks (of bq keys) per window
    qb = _pad_axis1(q, 0, nq * bq - t).reshape(b, nq, bq, hkv, g, d)

    def windows(x):  # [b, s, hkv, e] -> [b, nq, w, hkv, e]; window n = padded[n*bq : n*bq+w]
        n = (nq + m - 1) * bq
        x = _pad_axis1(x, left, max(0, n - left - s))[:, :n]  # padded index = j + left
        x = x.reshape(b, nq + m - 1, bq, *x.shape[2:])
        x = jnp.concatenate([x[:, i : i + nq] for i in range(m)], axis=2)  # slices, no gather
        return x[:, :, :w]

    kw, vw = windows(k), windows(v)  # [b, nq, w, hkv, d|dv]
    win = (jnp.arange(nq) * bq)[:, None] + jnp.arange(w)[None, :]  # [nq, w] padded indices

    logits = jnp.einsum("bnqkgd,bnwkd->bkgnqw", qb, kw, preferred_element_type=jnp.float32)
    logits = logits * scale  # [b, hkv, g, nq, bq, w]
    q_pos = (jnp.arange(nq) * bq)[:, None, None] + jnp.arange(bq)[None, :, None]  # [nq, bq, 1]
    k_pos = win[:, None, :] - left  # [nq, 1, w]
    allowed = mask.allowed(jnp.clip(q_pos, 0, t - 1), jnp.clip(k_pos, 0, s - 1))
    allowed = allowed & ((k_pos >= 0) & (k_pos < s))[None, None]  # [B, H, nq, bq, w]
    p = _masked_softmax(logits, _group_heads(allowed, hkv))

    out = jnp.einsum("bkgnqw,bnwkd->bnqkgd", p, vw.astype(jnp.float32))
    return out.reshape(b, nq * bq, hq, dv)[:, :t].astype(q.dtype)


def _attend_block_sparse(q, k, v, bs: BlockSparse, others, scale) -> jax.Array:
    """Per query block, attend over the gathered key blocks ``bs`` selects."""
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g = hq // hkv
    bq, bk = bs.block_q, bs.block_k
    nq, nk = -(-t // bq), -(-s // bk)
    lists = bs.block_lists(t, s, bq, bk)  # sorted, de-duplicated, -1 padded
    idx = lists.indices  # [B|1, H|1, nq, kk]
    mb, mh, _, kk = idx.shape
    c = kk * bk  # gathered keys per query block
    safe = jnp.clip(idx, 0, nk - 1)

    qb = _pad_axis1(q, 0, nq * bq - t).reshape(b, nq, bq, hkv, g, d)
    kb = _pad_axis1(k, 0, nk * bk - s).reshape(b, nk, bk, hkv, d)
    vb = _pad_axis1(v, 0, nk * bk - s).reshape(b, nk, bk, hkv, dv)
    bidx = jnp.arange(b)
    if mh == 1:  # all heads share the selection
        sel = jnp.broadcast_to(safe[:, 0], (b, nq, kk))
        kg = kb[bidx[:, None, None], sel].reshape(b, nq, c, hkv, d)
        vg = vb[bidx[:, None, None], sel].reshape(b, nq, c, hkv, dv)
        logits = jnp.einsum("bnqkgd,bnckd->bkgnqc", qb, kg, preferred_element_type=jnp.float32)
    else:  # per query head selection
        sel = jnp.broadcast_to(safe, (b, hq, nq, kk)).reshape(b, hkv, g, nq, kk)
        hidx = jnp.arange(hkv)[None, :, None, None, None]
        bi = bidx[:, None, None, None, None]
        kg = kb.transpose(0, 3, 1, 2, 4)[bi, hidx, sel].reshape(b, hkv, g, nq, c, d)
        vg = vb.transpose(0, 3, 1, 2, 4)[bi, hidx, sel].reshape(b, hkv, g, nq, c, dv)
        logits = jnp.einsum("bnqkgd,bkgncd->bkgnqc", qb, kg, preferred_element_type=jnp.float32)
    logits = logits * scale  # [b, hkv, g, nq, bq, c]

    q_pos = (jnp.arange(nq) * bq)[:, None, None] + jnp.arange(bq)[None, :, None]  # [nq, bq, 1]
    k_pos = (safe[..., None] * bk + jnp.arange(bk)).reshape(mb, mh, nq, 1, c)
    valid = (jnp.repeat(idx >= 0, bk, axis=-1).reshape(mb, mh, nq, 1, c)) & (k_pos < s)
    for m in others:  # positional masks evaluate at the gathered positions
        valid = valid & m.allowed_at(jnp.clip(q_pos, 0, t - 1)[None, None], k_pos)
    p = _masked_softmax(logits, _group_heads(valid, hkv))  # [b, hkv, g, nq, bq, c]

    if mh == 1:
        out = jnp.einsum("bkgnqc,bnckd->bnqkgd", p, vg.astype(jnp.float32))
    else:
        out = jnp.einsum("bkgnqc,bkgncd->bnqkgd", p, vg.astype(jnp.float32))
    return out.reshape(b, nq * bq, hq, dv)[:, :t].astype(q.dtype)


def _attend_xla(q, k, v, mask, scale, bias) -> jax.Array:
    plan = _xla_plan(mask, bias, q.shape[1], k.shape[1])
    if plan is None:
        return _attend_reference(q, k, v, mask, scale, bias)
    if plan[0] == "block_sparse":
        return _attend_block_sparse(q, k, v, plan[1], plan[2], scale)
    return _attend_local(q, k, v, mask, scale, *plan[1:])


# ----------------------------------------------------------------------------- cudnn


def _cudnn_args(mask: Mask | None, t: int, s: int) -> dict | None:
    """``jax.nn.dot_product_attention`` keyword args expressing ``mask``, or None."""
    if mask is None:
        return {}
    if isinstance(mask, Causal):
        if _static_offset(mask) == 0:
            return {"is_causal": True}
        return {"mask": mask.materialize(t, s)}
    if isinstance(mask, LocalWindow1D):
        return {"local_window_size": (mask.left, mask.right)}
    if isinstance(mask, Dense):
        return {"mask": mask.materialize(t, s)}
    if isinstance(mask, And) and len(mask.masks) == 2:
        a, b = mask.masks
        if isinstance(b, Causal):
            a, b = b, a
        if isinstance(a, Causal) and _static_offset(a) == 0 and isinstance(b, LocalWindow1D):
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


def _pallas_fn(mask: Mask | None):
    return PALLAS_IMPLS.get(type(mask))


def cudnn_accepts(q, k, v) -> bool:
    """Whether ``impl="cudnn"`` takes these inputs: one head_dim and one dtype for q, k, v."""
    return v.shape[-1] == q.shape[-1] and q.dtype == k.dtype == v.dtype


def resolve_impl(
    mask: Mask | None,
    *,
    bias=None,
    backend: str | None = None,
    q_len: int | None = None,
    kv_len: int | None = None,
    cudnn_ok: bool = True,
) -> str:
    """The implementation ``impl="auto"`` runs, in order of preference:

    1. ``"pallas"`` if a kernel is registered for ``type(mask)`` and the backend is gpu/tpu;
    2. ``"xla"`` if the mask has structure it exploits (a ``LocalWindow1D`` band or a
       ``BlockSparse`` selection) and there is no bias;
    3. ``"cudnn"`` on gpu for no mask or ``Causal(0)`` (jax's fused kernels), without a bias
       (ours zeroes all ``-inf`` rows, cuDNN's would be NaN) and when ``cudnn_ok`` (the
       inputs pass :func:`cudnn_accepts`);
    4. ``"reference"`` otherwise.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend in ("gpu", "tpu") and _pallas_fn(mask) is not None:
        return "pallas"
    if mask is not None and bias is None:
        t = 1 << 30 if q_len is None else q_len
        s = 1 << 30 if kv_len is None else kv_len
        if _xla_plan(mask, None, t, s) is not None:
            return "xla"
    if (
        backend == "gpu"
        and cudnn_ok
        and bias is None
        and (mask is None or (isinstance(mask, Causal) and _static_offset(mask) == 0))
    ):
        return "cudnn"
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
            q_len=q.shape[1],
            kv_len=k.shape[1],
            cudnn_ok=cudnn_accepts(q, k, v),
        )
    if impl == "pallas":
        fn = _pallas_fn(mask)
        if fn is None:
            if not PALLAS_IMPLS:
                raise NotImplementedError(_PALLAS_MISSING)
            registered = ", ".join(sorted(tp.__name__ for tp in PALLAS_IMPLS))
            raise NotImplementedError(
                f"no pallas kernel for mask type {type(mask).__name__}; registered: {registered}"
            )
        return fn(q, k, v, mask=mask, scale=scale, bias=bias)
    if impl == "cudnn":
        return _attend_cudnn(q, k, v, mask, scale, bias)
    if impl == "xla":
        return _attend_xla(q, k, v, mask, scale, bias)
    return _attend_reference(q, k, v, mask, scale, bias)
