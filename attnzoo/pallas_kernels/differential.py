"""Fused differential attention (DIFF Transformer; grouped: Motif-2's GDA) on our kernels.

``out_i = softmax(q1_i k1^T * scale) v - lam_i * softmax(q2_j k2^T * scale) v`` where signal
head ``i`` belongs to noise head ``j = i // (h1 // h2)``: DIFF has one noise head per signal
head (``h1 == h2``), GDA one per group of signal heads. The forward runs one kernel that reads
each K/V tile once for both maps (:mod:`.gpu.differential`, :mod:`.tpu.differential`). The
backward writes ``out = O1 - lam * O2`` as two attentions with output gradients ``dout`` and
``-sum_i lam_i dout_i`` and runs the flash-attention backward kernels on each;
``dlam_i = -sum(dout_i * O2_j)``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from attnzoo.pallas_kernels.block_lists import BlockLists
from attnzoo.pallas_kernels.flash_attention import BACKENDS as FLASH_BACKENDS
from attnzoo.pallas_kernels.gpu import differential as gpu_kernels
from attnzoo.pallas_kernels.layout import (
    check_head_dims,
    head_width,
    heads_first,
    pad_operand,
    padded,
)
from attnzoo.pallas_kernels.plan import Plan
from attnzoo.pallas_kernels.tpu import differential as tpu_kernels

__all__ = ["differential_attention"]

BACKENDS = {"gpu": gpu_kernels, "tpu": tpu_kernels}


def _rows_delta(do, out):
    return jnp.sum(do.astype(jnp.float32) * out.astype(jnp.float32), -1, keepdims=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _diff(backend, plan, q1, q2, k1, k2, v, lam, operands, lists, lists_t):
    return BACKENDS[backend].forward(plan, lists, q1, q2, k1, k2, v, lam, operands)[0]


def _diff_fwd(backend, plan, q1, q2, k1, k2, v, lam, operands, lists, lists_t):
    out, o2, lse1, lse2 = BACKENDS[backend].forward(plan, lists, q1, q2, k1, k2, v, lam, operands)
    return out, (q1, q2, k1, k2, v, lam, operands, lists, lists_t, out, o2, lse1, lse2)


def _diff_bwd(backend, plan, res, dout):
    q1, q2, k1, k2, v, lam, operands, lists, lists_t, out, o2, lse1, lse2 = res
    b, h1, tp, dv = out.shape
    h2, hkv = q2.shape[1], k1.shape[1]
    r = h1 // h2
    lam4 = lam.reshape(1, h1, 1, 1)
    o2_sig = jnp.repeat(o2.astype(jnp.float32), r, axis=1)  # [b, h1, tp, dv]
    o1 = out.astype(jnp.float32) + lam4 * o2_sig
    dout32 = dout.astype(jnp.float32)
    do2 = -(lam4 * dout32).reshape(b, h2, r, tp, dv).sum(2)  # [b, h2, tp, dv]
    dlam = -jnp.sum(dout32 * o2_sig, axis=(0, 2, 3))  # [h1]
    flash = FLASH_BACKENDS[backend]
    plan1 = dataclasses.replace(plan, group=h1 // hkv)
    dq1, dk1, dv1 = flash.backward(
        plan1, lists, lists_t, q1, k1, v, operands, dout, lse1, _rows_delta(dout, o1)
    )
    do2 = do2.astype(dout.dtype)
    dq2, dk2, dv2 = flash.backward(
        plan, lists, lists_t, q2, k2, v, operands, do2, lse2, _rows_delta(do2, o2)
    )
    dv_total = (dv1.astype(jnp.float32) + dv2.astype(jnp.float32)).astype(v.dtype)
    return dq1, dq2, dk1, dk2, dv_total, dlam, None, None, None


_diff.defvjp(_diff_fwd, _diff_bwd)


def differential_attention(
    q1,
    k1,
    q2,
    k2,
    v,
    lam,
    *,
    fn,
    operands,
    lists: BlockLists,
    scale: float,
    block_q: int,
    block_k: int,
    backend: str,
    interpret=False,
):
    """``[b, t, h1, dv]``, differentiable in q1, k1, q2, k2, v and ``lam``.

    Args:
      q1: signal queries ``[b, t, h1, d]``; q2: noise queries ``[b, t, h2, d]``, ``h1 % h2 == 0``.
      k1, k2: ``[b, s, hkv, d]``; v: ``[b, s, hkv, dv]``; ``h2 % hkv == 0`` (GQA).
      lam: ``lambda``, a scalar or one per signal head ``[h1]``.
      fn, operands, lists: the mask's pointwise form and block lists, without a head axis.
      scale, block_q, block_k, backend, interpret: as in :func:`flash_attention`.
    """
    b, t, h1, d = q1.shape
    h2, (s, hkv, dv) = q2.shape[2], v.shape[1:]
    if h1 % h2 or h2 % hkv or k1.shape != k2.shape or k1.shape[2] != hkv or q2.shape[3] != d:
        raise ValueError(
            "differential attention needs q1 [b, t, h1, d], q2 [b, t, h2, d], k1 = k2 "
            f"[b, s, hkv, d], v [b, s, hkv, dv] with h1 % h2 == h2 % hkv == 0; got q1={q1.shape}, "
            f"q2={q2.shape}, k1={k1.shape}, k2={k2.shape}, v={v.shape}"
        )
    if lists.indices.shape[1] != 1 or any(op.shape[1] != 1 for op in operands):
        raise ValueError("impl='pallas' differential attention takes masks without a head axis")
    check_head_dims(d, dv)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float32), (h1,))
    tp, sp = padded(t, block_q), padded(s, block_k)
    dp, dvp = head_width(d, backend), head_width(dv, backend)
    plan = Plan(fn, float(scale), block_q, block_k, t, s, h2 // hkv, interpret)
    out = _diff(
        backend,
        plan,
        heads_first(q1, tp, dp),
        heads_first(q2, tp, dp),
        heads_first(k1, sp, dp),
        heads_first(k2, sp, dp),
        heads_first(v, sp, dvp),
        lam,
        tuple(pad_operand(op, tp, sp) for op in operands),
        lists,
        lists.transpose(sp // block_k),
    )  # [b, h1, tp, dvp]
    return out.transpose(0, 2, 1, 3)[:, :t, :, :dv]
