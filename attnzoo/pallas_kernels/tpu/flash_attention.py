"""Block-sparse flash attention on TPU through Pallas Mosaic.

Layout as in the GPU kernels: q ``[b, hq, tp, d]``, k/v ``[b, hkv, sp, d|dv]``, mask operands
``[B|1, H|1, tp|1, sp|1]``. The block lists travel as scalar prefetch (flattened int32 in
SMEM) and the K/V ``index_map`` reads them, so the pipeline DMAs only the listed key blocks;
padding slots repeat the last id (no new copy) and ``counts`` skips their compute.
Forward and dq: grid ``(b, hq, nq, max_k)``, the last axis sequential, f32 statistics in VMEM
scratch. dk/dv: grid ``(b, hkv, nk, group, max_q)`` walking the transposed lists of every
query head in the kv head's group.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from attnzoo.pallas_kernels import tiles
from attnzoo.pallas_kernels.plan import Plan


class FlatLists:
    """Index arithmetic for a flattened ``[B|1, H|1, n, width]`` list / ``[B|1, H|1, n]`` count."""

    def __init__(self, indices):
        self.mb, self.mh, self.n, self.width = indices.shape

    def row(self, b, h, i):
        bb = b if self.mb > 1 else 0
        hh = h if self.mh > 1 else 0
        return (bb * self.mh + hh) * self.n + i

    def slot(self, b, h, i, j):
        return self.row(b, h, i) * self.width + j


def operand_spec(op, bq, bk, where):
    """BlockSpec of a mask operand; ``where(*grid, *prefetch) -> (b, h, q_block, k_block)``."""
    bo, ho, to, so = op.shape

    def index_map(*args):
        b, h, qi, ki = where(*args)
        return (b if bo > 1 else 0, h if ho > 1 else 0, qi if to > 1 else 0, ki if so > 1 else 0)

    return pl.BlockSpec((None, None, bq if to > 1 else 1, bk if so > 1 else 1), index_map)


def tile_mask(plan: Plan, op_refs, q0, k0):
    """bool ``[bq, bk]``: the mask on the tile at (q0, k0) (operand refs hold the tile)."""
    vals = [ref[...] for ref in op_refs]
    shape = (plan.block_q, plan.block_k)
    return tiles.tile_allowed(plan.fn, vals, q0, k0, shape, plan.q_len, plan.kv_len)


def launch(kernel, num_prefetch, grid, in_specs, out_specs, out_shape, scratch, sem, interpret):
    """``pallas_call`` with a ``PrefetchScalarGridSpec`` (the first ``num_prefetch`` inputs in
    SMEM) and the dimension semantics ``sem``."""
    return pl.pallas_call(
        kernel,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=num_prefetch,
            grid=grid,
            in_specs=in_specs,
            out_specs=out_specs,
            scratch_shapes=scratch,
        ),
        out_shape=out_shape,
        interpret=interpret,
        compiler_params=pltpu.CompilerParams(dimension_semantics=sem),
    )


# ----------------------------------------------------------------------------- q-block walk


def _q_walk_specs(plan: Plan, lists, widths_q, widths_kv, operands):
    """Specs for grid ``(b, hq, nq, max_k)``: q-side arrays by query block, k/v by list entry."""
    bq, bk, g = plan.block_q, plan.block_k, plan.group
    flat = FlatLists(lists.indices)

    def kv_block(b, h, i, j, idx, cnt):
        return idx[flat.slot(b, h, i, j)]

    q_side = [pl.BlockSpec((None, None, bq, w), lambda b, h, i, *_: (b, h, i, 0)) for w in widths_q]
    kv_side = [
        pl.BlockSpec(
            (None, None, bk, w),
            lambda b, h, i, j, idx, cnt: (b, h // g, kv_block(b, h, i, j, idx, cnt), 0),
        )
        for w in widths_kv
    ]
    ops = [
        operand_spec(
            op, bq, bk, lambda b, h, i, j, idx, cnt: (b, h, i, kv_block(b, h, i, j, idx, cnt))
        )
        for op in operands
    ]
    return flat, q_side, kv_side, ops


def _forward_kernel(plan: Plan, flat, idx_ref, cnt_ref, q_ref, k_ref, v_ref, *refs):
    *op_refs, o_ref, lse_ref, m_sc, l_sc, acc_sc = refs
    b, h, i, j = (pl.program_id(a) for a in range(4))

    @pl.when(j == 0)
    def _init():
        m_sc[...] = jnp.full(m_sc.shape, tiles.MASK_VALUE, jnp.float32)
        l_sc[...] = jnp.zeros(l_sc.shape, jnp.float32)
        acc_sc[...] = jnp.zeros(acc_sc.shape, jnp.float32)

    @pl.when(j < cnt_ref[flat.row(b, h, i)])
    def _step():
        k0 = idx_ref[flat.slot(b, h, i, j)] * plan.block_k
        allowed = tile_mask(plan, op_refs, i * plan.block_q, k0)
        s = tiles.logits(q_ref[...], k_ref[...], plan.scale)
        m, row_sum, acc = tiles.online_softmax_step(
            s, allowed, v_ref[...], m_sc[...], l_sc[...], acc_sc[...]
        )
        m_sc[...], l_sc[...], acc_sc[...] = m, row_sum, acc

    @pl.when(j == pl.num_programs(3) - 1)
    def _finish():
        out, lse = tiles.finish(m_sc[...], l_sc[...], acc_sc[...])
        o_ref[...] = out.astype(o_ref.dtype)
        lse_ref[...] = lse


def forward(plan: Plan, lists, q, k, v, operands):
    """``(out [b, hq, tp, dv], lse [b, hq, tp, 1] f32)``."""
    b, hq, tp, d = q.shape
    bq, dv = plan.block_q, v.shape[-1]
    flat, q_side, kv_side, ops = _q_walk_specs(plan, lists, [d], [d, dv], operands)
    out_rows = [
        pl.BlockSpec((None, None, bq, w), lambda b, h, i, *_: (b, h, i, 0)) for w in (dv, 1)
    ]
    return launch(
        functools.partial(_forward_kernel, plan, flat),
        2,
        (b, hq, tp // bq, lists.indices.shape[-1]),
        q_side + kv_side + ops,
        out_rows,
        [
            jax.ShapeDtypeStruct((b, hq, tp, dv), q.dtype),
            jax.ShapeDtypeStruct((b, hq, tp, 1), jnp.float32),
        ],
        [
            pltpu.VMEM((bq, 1), jnp.float32),
            pltpu.VMEM((bq, 1), jnp.float32),
            pltpu.VMEM((bq, dv), jnp.float32),
        ],
        ("parallel", "parallel", "parallel", "arbitrary"),
        plan.interpret,
    )(lists.repeat_last().reshape(-1), lists.counts.reshape(-1), q, k, v, *operands)


# ----------------------------------------------------------------------------- backward


def _dq_kernel(plan: Plan, flat, idx_ref, cnt_ref, q_ref, do_ref, lse_ref, dl_ref, *refs):
    k_ref, v_ref, *op_refs, dq_ref, dq_sc = refs
    b, h, i, j = (pl.program_id(a) for a in range(4))

    @pl.when(j == 0)
    def _init():
        dq_sc[...] = jnp.zeros(dq_sc.shape, jnp.float32)

    @pl.when(j < cnt_ref[flat.row(b, h, i)])
    def _step():
        k0 = idx_ref[flat.slot(b, h, i, j)] * plan.block_k
        allowed = tile_mask(plan, op_refs, i * plan.block_q, k0)
        k = k_ref[...]
        _, ds = tiles.probs_and_dlogits(
            q_ref[...], k, v_ref[...], do_ref[...], lse_ref[...], dl_ref[...], allowed, plan.scale
        )
        dq_sc[...] += tiles.dot(ds.astype(k.dtype), k)

    @pl.when(j == pl.num_programs(3) - 1)
    def _finish():
        dq_ref[...] = (dq_sc[...] * plan.scale).astype(dq_ref.dtype)


def _dkdv_kernel(plan: Plan, flat, idx_ref, cnt_ref, k_ref, v_ref, q_ref, do_ref, *refs):
    lse_ref, dl_ref, *op_refs, dk_ref, dv_ref, dk_sc, dv_sc = refs
    b, hk, n, gi, j = (pl.program_id(a) for a in range(5))
    h = hk * plan.group + gi

    @pl.when((gi == 0) & (j == 0))
    def _init():
        dk_sc[...] = jnp.zeros(dk_sc.shape, jnp.float32)
        dv_sc[...] = jnp.zeros(dv_sc.shape, jnp.float32)

    @pl.when(j < cnt_ref[flat.row(b, h, n)])
    def _step():
        q0 = idx_ref[flat.slot(b, h, n, j)] * plan.block_q
        allowed = tile_mask(plan, op_refs, q0, n * plan.block_k)
        q, do = q_ref[...], do_ref[...]
        p, ds = tiles.probs_and_dlogits(
            q, k_ref[...], v_ref[...], do, lse_ref[...], dl_ref[...], allowed, plan.scale
        )
        dv_sc[...] += tiles.dot(p.astype(do.dtype), do, trans_a=True)
        dk_sc[...] += tiles.dot(ds.astype(q.dtype), q, trans_a=True)

    @pl.when((gi == plan.group - 1) & (j == pl.num_programs(4) - 1))
    def _finish():
        dk_ref[...] = (dk_sc[...] * plan.scale).astype(dk_ref.dtype)
        dv_ref[...] = dv_sc[...].astype(dv_ref.dtype)


def _dq(plan: Plan, lists, q, k, v, operands, do, lse, delta):
    b, hq, tp, d = q.shape
    bq, dv = plan.block_q, v.shape[-1]
    flat, q_side, kv_side, ops = _q_walk_specs(plan, lists, [d, dv, 1, 1], [d, dv], operands)
    return launch(
        functools.partial(_dq_kernel, plan, flat),
        2,
        (b, hq, tp // bq, lists.indices.shape[-1]),
        q_side + kv_side + ops,
        q_side[0],
        jax.ShapeDtypeStruct(q.shape, q.dtype),
        [pltpu.VMEM((bq, d), jnp.float32)],
        ("parallel", "parallel", "parallel", "arbitrary"),
        plan.interpret,
    )(
        lists.repeat_last().reshape(-1),
        lists.counts.reshape(-1),
        q, do, lse, delta, k, v, *operands,
    )  # fmt: skip


def _dkdv(plan: Plan, lists_t, q, k, v, operands, do, lse, delta):
    b, hkv, sp, d = k.shape
    bq, bk, g, dv = plan.block_q, plan.block_k, plan.group, v.shape[-1]
    flat = FlatLists(lists_t.indices)

    def q_block(b, hk, n, gi, j, idx, cnt):
        return idx[flat.slot(b, hk * g + gi, n, j)]

    def q_rows(*args):  # (b, query head, query block, 0)
        return (args[0], args[1] * g + args[3], q_block(*args), 0)

    def tile(*args):
        return (*q_rows(*args)[:3], args[2])

    k_side = [
        pl.BlockSpec((None, None, bk, w), lambda b, hk, n, *_: (b, hk, n, 0)) for w in (d, dv)
    ]
    q_side = [pl.BlockSpec((None, None, bq, w), q_rows) for w in (d, dv, 1, 1)]
    ops = [operand_spec(op, bq, bk, tile) for op in operands]
    return launch(
        functools.partial(_dkdv_kernel, plan, flat),
        2,
        (b, hkv, sp // bk, g, lists_t.indices.shape[-1]),
        k_side + q_side + ops,
        k_side,
        [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
        [pltpu.VMEM((bk, d), jnp.float32), pltpu.VMEM((bk, dv), jnp.float32)],
        ("parallel", "parallel", "parallel", "arbitrary", "arbitrary"),
        plan.interpret,
    )(
        lists_t.repeat_last().reshape(-1),
        lists_t.counts.reshape(-1),
        k, v, q, do, lse, delta, *operands,
    )  # fmt: skip


def backward(plan: Plan, lists, lists_t, q, k, v, operands, do, lse, delta):
    """``(dq, dk, dv)``; ``lists_t``: per key block, the query blocks that use it."""
    dq = _dq(plan, lists, q, k, v, operands, do, lse, delta)
    dk, dv = _dkdv(plan, lists_t, q, k, v, operands, do, lse, delta)
    return dq, dk, dv
