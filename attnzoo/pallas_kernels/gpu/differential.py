"""Fused differential attention forward on GPU (Pallas Triton).

One program per (batch, noise head, query block) walks the key-block list once: it reads
each K/V tile once, folds the noise map ``softmax(q2 k2^T)`` and the ``r`` signal maps
``softmax(q1_i k1^T)`` of the signal heads it serves into their running statistics, and writes
``out_i = O1_i - lam_i * O2``. Layout: q1 ``[b, h1, tp, d]``, q2 ``[b, h2, tp, d]``, k1/k2/v
``[b, hkv, sp, d|dv]``, ``r = h1 // h2``; the noise head ``j`` reads kv head
``j // (h2 // hkv)``. The backward reuses the flash-attention backward kernels per map.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from attnzoo.pallas_kernels import tiles
from attnzoo.pallas_kernels.gpu.flash_attention import WHOLE, launch, read_at, tile_mask
from attnzoo.pallas_kernels.plan import Plan


def _kernel(plan: Plan, idx_ref, cnt_ref, lam_ref, q1_ref, q2_ref, k1_ref, k2_ref, v_ref, *refs, r):
    *op_refs, o_ref, o2_ref, lse1_ref, lse2_ref = refs
    b, j, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    bq, bk, hk = plan.block_q, plan.block_k, j // plan.group
    q1 = q1_ref[...].reshape(r * bq, -1)  # [r*bq, d], signal heads stacked
    q2 = q2_ref[...]  # [bq, d]
    dv = v_ref.shape[-1]

    def body(n, carry):
        sig, noise = carry
        k0 = read_at(idx_ref, b, 0, i, n) * bk
        v = v_ref[b, hk, pl.ds(k0, bk), :]  # read once for both maps
        allowed = tile_mask(plan, op_refs, b, 0, i * bq, k0)  # [bq, bk]
        s1 = tiles.logits(q1, k1_ref[b, hk, pl.ds(k0, bk), :], plan.scale)
        s2 = tiles.logits(q2, k2_ref[b, hk, pl.ds(k0, bk), :], plan.scale)
        sig_allowed = jnp.broadcast_to(allowed[None], (r, bq, bk)).reshape(r * bq, bk)
        return (
            tiles.online_softmax_step(s1, sig_allowed, v, *sig),
            tiles.online_softmax_step(s2, allowed, v, *noise),
        )

    def init(rows):
        return (
            jnp.full((rows, 1), tiles.MASK_VALUE, jnp.float32),
            jnp.zeros((rows, 1), jnp.float32),
            jnp.zeros((rows, dv), jnp.float32),
        )

    sig, noise = jax.lax.fori_loop(0, read_at(cnt_ref, b, 0, i), body, (init(r * bq), init(bq)))
    o1, lse1 = tiles.finish(*sig)
    o2, lse2 = tiles.finish(*noise)
    lam = lam_ref[...].reshape(r, 1, 1)  # f32, per signal head of this group
    out = o1.reshape(r, bq, dv) - lam * o2[None]
    o_ref[...] = out.astype(o_ref.dtype)
    o2_ref[...] = o2.astype(o2_ref.dtype)
    lse1_ref[...] = lse1.reshape(r, bq, 1)
    lse2_ref[...] = lse2


def forward(plan: Plan, lists, q1, q2, k1, k2, v, lam, operands):
    """``(out [b, h1, tp, dv], o2 [b, h2, tp, dv], lse1, lse2)``; ``lam`` f32 ``[h1]``."""
    b, h1, tp, d = q1.shape
    h2, dv = q2.shape[1], v.shape[-1]
    r, bq = h1 // h2, plan.block_q
    sig = lambda w: pl.BlockSpec((None, r, bq, w), lambda b, j, i: (b, j, i, 0))  # noqa: E731
    noise = lambda w: pl.BlockSpec((None, None, bq, w), lambda b, j, i: (b, j, i, 0))  # noqa: E731
    lam_spec = pl.BlockSpec((r,), lambda b, j, i: (j,))
    return launch(
        plan,
        functools.partial(_kernel, r=r),
        grid=(b, h2, tp // bq),
        in_specs=[WHOLE, WHOLE, lam_spec, sig(d), noise(d), WHOLE, WHOLE, WHOLE]
        + [WHOLE] * len(operands),
        out_specs=[sig(dv), noise(dv), sig(1), noise(1)],
        out_shape=[
            jax.ShapeDtypeStruct((b, h1, tp, dv), q1.dtype),
            jax.ShapeDtypeStruct((b, h2, tp, dv), q1.dtype),
            jax.ShapeDtypeStruct((b, h1, tp, 1), jnp.float32),
            jax.ShapeDtypeStruct((b, h2, tp, 1), jnp.float32),
        ],
    )(lists.indices, lists.counts, lam, q1, q2, k1, k2, v, *operands)
