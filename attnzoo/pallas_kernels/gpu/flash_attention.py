"""Block-sparse flash attention on GPU through the Pallas Triton backend.

Layout: q ``[b, hq, tp, d]``, k/v ``[b, hkv, sp, d|dv]`` (lengths padded to the blocks, head
dims padded to powers of two), mask operands ``[B|1, H|1, tp|1, sp|1]``. One program per
(batch, query head, query block) walks its key-block list; K/V stay whole in global memory and
query head ``h`` reads kv head ``h // g`` (GQA without copies). The backward has a dq pass
(the same walk) and a dk/dv pass: one program per (batch, kv head, key block) walks, for every
query head of its group, the query blocks that used the key block.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from attnzoo.pallas_kernels import tiles
from attnzoo.pallas_kernels.plan import Plan


def read_at(ref, b, h, *rest):
    """``ref[b|0, h|0, *rest]`` for a ref with broadcastable ``[B|1, H|1, ...]`` axes."""
    return ref[b if ref.shape[0] > 1 else 0, h if ref.shape[1] > 1 else 0, *rest]


def _operand_tiles(refs, b, h, q0, k0, bq, bk):
    """Each mask operand read on the tile at (q0, k0): ``[bq|1, bk|1]``."""
    return [
        read_at(
            ref,
            b,
            h,
            pl.ds(q0, bq) if ref.shape[2] > 1 else pl.ds(0, 1),
            pl.ds(k0, bk) if ref.shape[3] > 1 else pl.ds(0, 1),
        )
        for ref in refs
    ]


def tile_mask(plan: Plan, op_refs, b, h, q0, k0):
    """bool ``[bq, bk]``: the mask on the tile at (q0, k0) of batch b, query head h."""
    vals = _operand_tiles(op_refs, b, h, q0, k0, plan.block_q, plan.block_k)
    shape = (plan.block_q, plan.block_k)
    return tiles.tile_allowed(plan.fn, vals, q0, k0, shape, plan.q_len, plan.kv_len)


def launch(plan: Plan, kernel, grid, in_specs, out_specs, out_shape):
    """``pallas_call`` of ``kernel(plan, *refs)`` with our Triton settings."""
    return pl.pallas_call(
        functools.partial(kernel, plan),
        grid=grid,
        in_specs=in_specs,
        out_specs=out_specs,
        out_shape=out_shape,
        interpret=plan.interpret,
        compiler_params=plgpu.CompilerParams(num_warps=4, num_stages=2),
    )


def _rows(block: int, width: int):
    """Block ``[block, width]`` of a ``[b, h, n, width]`` array at grid point (b, h, i)."""
    return pl.BlockSpec((None, None, block, width), lambda b, h, i: (b, h, i, 0))


WHOLE = pl.no_block_spec


# ----------------------------------------------------------------------------- forward


def _forward_kernel(plan: Plan, idx_ref, cnt_ref, q_ref, k_ref, v_ref, *refs):
    *op_refs, o_ref, lse_ref = refs
    b, h, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    bq, bk, hk = plan.block_q, plan.block_k, h // plan.group
    q = q_ref[...]  # [bq, d]

    def body(j, carry):
        k0 = read_at(idx_ref, b, h, i, j) * bk
        k = k_ref[b, hk, pl.ds(k0, bk), :]  # [bk, d]
        v = v_ref[b, hk, pl.ds(k0, bk), :]  # [bk, dv]
        allowed = tile_mask(plan, op_refs, b, h, i * bq, k0)
        return tiles.online_softmax_step(tiles.logits(q, k, plan.scale), allowed, v, *carry)

    init = (
        jnp.full((bq, 1), tiles.MASK_VALUE, jnp.float32),
        jnp.zeros((bq, 1), jnp.float32),
        jnp.zeros((bq, o_ref.shape[-1]), jnp.float32),
    )
    out, lse = tiles.finish(*jax.lax.fori_loop(0, read_at(cnt_ref, b, h, i), body, init))
    o_ref[...] = out.astype(o_ref.dtype)
    lse_ref[...] = lse


def forward(plan: Plan, lists, q, k, v, operands):
    """``(out [b, hq, tp, dv], lse [b, hq, tp, 1] f32)``."""
    b, hq, tp, d = q.shape
    bq, dv = plan.block_q, v.shape[-1]
    return launch(
        plan,
        _forward_kernel,
        grid=(b, hq, tp // bq),
        in_specs=[WHOLE, WHOLE, _rows(bq, d), WHOLE, WHOLE] + [WHOLE] * len(operands),
        out_specs=[_rows(bq, dv), _rows(bq, 1)],
        out_shape=[
            jax.ShapeDtypeStruct((b, hq, tp, dv), q.dtype),
            jax.ShapeDtypeStruct((b, hq, tp, 1), jnp.float32),
        ],
    )(lists.indices, lists.counts, q, k, v, *operands)


# ----------------------------------------------------------------------------- backward


def _dq_kernel(plan: Plan, idx_ref, cnt_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, dl_ref, *refs):
    *op_refs, dq_ref = refs
    b, h, i = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    bq, bk, hk = plan.block_q, plan.block_k, h // plan.group
    q, do, lse, delta = q_ref[...], do_ref[...], lse_ref[...], dl_ref[...]

    def body(j, dq):
        k0 = read_at(idx_ref, b, h, i, j) * bk
        k = k_ref[b, hk, pl.ds(k0, bk), :]
        v = v_ref[b, hk, pl.ds(k0, bk), :]
        allowed = tile_mask(plan, op_refs, b, h, i * bq, k0)
        _, ds = tiles.probs_and_dlogits(q, k, v, do, lse, delta, allowed, plan.scale)
        return dq + tiles.dot(ds.astype(k.dtype), k)

    dq = jax.lax.fori_loop(
        0, read_at(cnt_ref, b, h, i), body, jnp.zeros((bq, q.shape[-1]), jnp.float32)
    )
    dq_ref[...] = (dq * plan.scale).astype(dq_ref.dtype)


def _dkdv_kernel(plan: Plan, idx_ref, cnt_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, dl_ref, *refs):
    *op_refs, dk_ref, dv_ref = refs
    b, hk, n = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    bq, bk = plan.block_q, plan.block_k
    k, v = k_ref[...], v_ref[...]  # [bk, d], [bk, dv]

    def head(gi, carry):
        h = hk * plan.group + gi

        def body(j, carry):
            dk, dv = carry
            q0 = read_at(idx_ref, b, h, n, j) * bq
            q = q_ref[b, h, pl.ds(q0, bq), :]
            do = do_ref[b, h, pl.ds(q0, bq), :]
            lse = lse_ref[b, h, pl.ds(q0, bq), :]
            delta = dl_ref[b, h, pl.ds(q0, bq), :]
            allowed = tile_mask(plan, op_refs, b, h, q0, n * bk)
            p, ds = tiles.probs_and_dlogits(q, k, v, do, lse, delta, allowed, plan.scale)
            dv = dv + tiles.dot(p.astype(do.dtype), do, trans_a=True)
            dk = dk + tiles.dot(ds.astype(q.dtype), q, trans_a=True)
            return dk, dv

        return jax.lax.fori_loop(0, read_at(cnt_ref, b, h, n), body, carry)

    init = (
        jnp.zeros((bk, k.shape[-1]), jnp.float32),
        jnp.zeros((bk, v.shape[-1]), jnp.float32),
    )
    dk, dv = jax.lax.fori_loop(0, plan.group, head, init)
    dk_ref[...] = (dk * plan.scale).astype(dk_ref.dtype)
    dv_ref[...] = dv.astype(dv_ref.dtype)


def backward(plan: Plan, lists, lists_t, q, k, v, operands, do, lse, delta):
    """``(dq, dk, dv)``; ``lists_t``: per key block, the query blocks that use it."""
    b, hq, tp, d = q.shape
    hkv, sp, dv = k.shape[1], k.shape[2], v.shape[-1]
    bq, bk = plan.block_q, plan.block_k
    ops = [WHOLE] * len(operands)
    dq = launch(
        plan,
        _dq_kernel,
        grid=(b, hq, tp // bq),
        in_specs=[WHOLE, WHOLE, _rows(bq, d), WHOLE, WHOLE]
        + [_rows(bq, dv), _rows(bq, 1), _rows(bq, 1)]
        + ops,
        out_specs=_rows(bq, d),
        out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
    )(lists.indices, lists.counts, q, k, v, do, lse, delta, *operands)
    dk, dv_ = launch(
        plan,
        _dkdv_kernel,
        grid=(b, hkv, sp // bk),
        in_specs=[WHOLE, WHOLE, WHOLE, _rows(bk, d), _rows(bk, dv)] + [WHOLE] * 3 + ops,
        out_specs=[_rows(bk, d), _rows(bk, dv)],
        out_shape=[
            jax.ShapeDtypeStruct(k.shape, k.dtype),
            jax.ShapeDtypeStruct(v.shape, v.dtype),
        ],
    )(lists_t.indices, lists_t.counts, q, k, v, do, lse, delta, *operands)
    return dq, dk, dv_
