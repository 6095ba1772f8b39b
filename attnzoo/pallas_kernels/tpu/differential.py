"""Fused differential attention forward on TPU (Pallas Mosaic).

Grid ``(b, h2, nq, max_k)``: one noise head and the ``r = h1 // h2`` signal heads it serves,
per query block; the key-block list arrives as scalar prefetch and drives the K1/K2/V
``index_map``, so each listed K/V tile is copied once and feeds both maps. Running max/sum of
the signal and noise maps live in f32 VMEM scratch; the last step writes
``out_i = O1_i - lam_i * O2``. Layout as in :mod:`attnzoo.pallas_kernels.gpu.differential`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from attnzoo.pallas_kernels import tiles
from attnzoo.pallas_kernels.plan import Plan
from attnzoo.pallas_kernels.tpu.flash_attention import FlatLists, launch, operand_spec, tile_mask


def _kernel(plan: Plan, flat, r, idx_ref, cnt_ref, lam_ref, q1_ref, q2_ref, *refs):
    k1_ref, k2_ref, v_ref, *rest = refs
    *op_refs, o_ref, o2_ref, lse1_ref, lse2_ref, m1, l1, acc1, m2, l2, acc2 = rest
    b, j, i, n = (pl.program_id(a) for a in range(4))
    bq = plan.block_q

    @pl.when(n == 0)
    def _init():
        for m, l_, acc in ((m1, l1, acc1), (m2, l2, acc2)):
            m[...] = jnp.full(m.shape, tiles.MASK_VALUE, jnp.float32)
            l_[...] = jnp.zeros(l_.shape, jnp.float32)
            acc[...] = jnp.zeros(acc.shape, jnp.float32)

    @pl.when(n < cnt_ref[flat.row(b, 0, i)])
    def _step():
        k0 = idx_ref[flat.slot(b, 0, i, n)] * plan.block_k
        allowed = tile_mask(plan, op_refs, i * bq, k0)  # [bq, bk]
        v = v_ref[...]
        q1 = q1_ref[...].reshape(r * bq, -1)
        s1 = tiles.logits(q1, k1_ref[...], plan.scale)
        s2 = tiles.logits(q2_ref[...], k2_ref[...], plan.scale)
        sig_allowed = jnp.broadcast_to(allowed[None], (r, *allowed.shape)).reshape(s1.shape)
        for s, ok, (m, l_, acc) in (
            (s1, sig_allowed, (m1, l1, acc1)),
            (s2, allowed, (m2, l2, acc2)),
        ):
            m[...], l_[...], acc[...] = tiles.online_softmax_step(
                s, ok, v, m[...], l_[...], acc[...]
            )

    @pl.when(n == pl.num_programs(3) - 1)
    def _finish():
        o1, lse1 = tiles.finish(m1[...], l1[...], acc1[...])
        o2, lse2 = tiles.finish(m2[...], l2[...], acc2[...])
        lam = lam_ref[...].reshape(r, 1, 1)
        o_ref[...] = (o1.reshape(r, bq, -1) - lam * o2[None]).astype(o_ref.dtype)
        o2_ref[...] = o2.astype(o2_ref.dtype)
        lse1_ref[...] = lse1.reshape(r, bq, 1)
        lse2_ref[...] = lse2


def forward(plan: Plan, lists, q1, q2, k1, k2, v, lam, operands):
    """``(out [b, h1, tp, dv], o2 [b, h2, tp, dv], lse1, lse2)``; ``lam`` f32 ``[h1]``."""
    b, h1, tp, d = q1.shape
    h2, dv = q2.shape[1], v.shape[-1]
    r, bq, bk, g = h1 // h2, plan.block_q, plan.block_k, plan.group
    flat = FlatLists(lists.indices)

    def kv_rows(b, j, i, n, idx, cnt):
        return (b, j // g, idx[flat.slot(b, 0, i, n)], 0)

    def tile(b, j, i, n, idx, cnt):
        return (b, 0, i, idx[flat.slot(b, 0, i, n)])

    sig = lambda w: pl.BlockSpec((None, r, bq, w), lambda b, j, i, *_: (b, j, i, 0))  # noqa: E731
    noise = lambda w: pl.BlockSpec((None, None, bq, w), lambda b, j, i, *_: (b, j, i, 0))  # noqa: E731
    kv = [pl.BlockSpec((None, None, bk, w), kv_rows) for w in (d, d, dv)]
    scratch = [
        pltpu.VMEM(shape, jnp.float32)
        for rows in (r * bq, bq)
        for shape in ((rows, 1), (rows, 1), (rows, dv))
    ]
    return launch(
        functools.partial(_kernel, plan, flat, r),
        2,
        (b, h2, tp // bq, lists.indices.shape[-1]),
        [pl.BlockSpec((r,), lambda b, j, *_: (j,)), sig(d), noise(d), *kv]
        + [operand_spec(op, bq, bk, tile) for op in operands],
        [sig(dv), noise(dv), sig(1), noise(1)],
        [
            jax.ShapeDtypeStruct((b, h1, tp, dv), q1.dtype),
            jax.ShapeDtypeStruct((b, h2, tp, dv), q1.dtype),
            jax.ShapeDtypeStruct((b, h1, tp, 1), jnp.float32),
            jax.ShapeDtypeStruct((b, h2, tp, 1), jnp.float32),
        ],
        scratch,
        ("parallel", "parallel", "parallel", "arbitrary"),
        plan.interpret,
    )(lists.repeat_last().reshape(-1), lists.counts.reshape(-1), lam, q1, q2, k1, k2, v, *operands)
