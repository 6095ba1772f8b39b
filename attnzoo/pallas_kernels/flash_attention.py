"""The one dispatcher for block-sparse flash attention: picks the GPU (Triton) or TPU (Mosaic)
kernels, pads lengths to the blocks (and, on GPU, head dims to powers of two), and wires the
forward and backward kernels into a ``jax.custom_vjp``.

The mask arrives as its pointwise function, its operands and its block lists (see
:class:`attnzoo.layers.masks.Pointwise`); one kernel per backend serves every mask kind.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from attnzoo.pallas_kernels.block_lists import BlockLists
from attnzoo.pallas_kernels.gpu import flash_attention as gpu_kernels
from attnzoo.pallas_kernels.layout import (
    HEAD_DIMS,
    check_head_dims,
    head_width,
    heads_first,
    pad_operand,
    padded,
    pow2_ceil,
)
from attnzoo.pallas_kernels.plan import Plan
from attnzoo.pallas_kernels.tpu import flash_attention as tpu_kernels

__all__ = ["BACKENDS", "HEAD_DIMS", "choose_blocks", "flash_attention"]

BACKENDS = {"gpu": gpu_kernels, "tpu": tpu_kernels}
_DEFAULT_BLOCK = {"gpu": 64, "tpu": 128}
_MIN_BLOCK = {"gpu": 16, "tpu": 8}


def choose_blocks(
    backend: str, q_len: int, kv_len: int, multiple: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Tile sizes ``(block_q, block_k)``: the backend default, shrunk for short sequences; with
    ``multiple`` (a mask exact only at blocks dividing it) the largest power of two dividing it.
    """
    if backend not in BACKENDS:
        raise ValueError(f"pallas kernels run on {sorted(BACKENDS)}, not {backend!r}")
    lo = _MIN_BLOCK[backend]
    blocks = []
    for length, mult in zip((q_len, kv_len), multiple or (None, None), strict=True):
        block = max(lo, min(_DEFAULT_BLOCK[backend], pow2_ceil(length)))
        if mult is not None:
            while block > lo and mult % block:
                block //= 2
            if mult % block:
                raise ValueError(
                    f"impl='pallas' on {backend} needs tiles of >= {lo} tokens dividing the mask's "
                    f"block size {mult}; use impl='xla' for this mask"
                )
        blocks.append(block)
    return blocks[0], blocks[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _flash(kernels, plan, q, k, v, operands, lists, lists_t):
    return kernels.forward(plan, lists, q, k, v, operands)[0]


def _flash_fwd(kernels, plan, q, k, v, operands, lists, lists_t):
    out, lse = kernels.forward(plan, lists, q, k, v, operands)
    return out, (q, k, v, operands, lists, lists_t, out, lse)


def _flash_bwd(kernels, plan, res, dout):
    q, k, v, operands, lists, lists_t, out, lse = res
    delta = jnp.sum(dout.astype(jnp.float32) * out.astype(jnp.float32), -1, keepdims=True)
    dq, dk, dv = kernels.backward(plan, lists, lists_t, q, k, v, operands, dout, lse, delta)
    return dq, dk, dv, None, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def flash_attention(
    q,
    k,
    v,
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
    """Block-sparse attention ``[b, t, hq, dv]`` (differentiable in q, k, v).

    Args:
      q, k, v: ``[b, t, hq, d]``, ``[b, s, hkv, d]``, ``[b, s, hkv, dv]``; ``hq % hkv == 0``.
      fn, operands: the mask's pointwise form (operands ``[B|1, H|1, t|1, s|1]`` int32).
      lists: the mask's block lists at ``(block_q, block_k)``.
      scale: logit scale.
      backend: ``"gpu"`` or ``"tpu"``: whose kernels run.
      interpret: ``False`` to compile for the backend; ``True`` (or ``pltpu.InterpretParams``
        for the TPU kernels) to run them in interpret mode, e.g. on CPU.
    """
    check_head_dims(q.shape[-1], v.shape[-1])
    t, hq = q.shape[1], q.shape[2]
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    tp, sp = padded(t, block_q), padded(s, block_k)
    dp, dvp = head_width(q.shape[-1], backend), head_width(dv, backend)
    plan = Plan(fn, float(scale), block_q, block_k, t, s, hq // hkv, interpret)
    out = _flash(
        BACKENDS[backend],
        plan,
        heads_first(q, tp, dp),
        heads_first(k, sp, dp),
        heads_first(v, sp, dvp),
        tuple(pad_operand(op, tp, sp) for op in operands),
        lists,
        lists.transpose(sp // block_k),
    )  # [b, hq, tp, dvp]
    return out.transpose(0, 2, 1, 3)[:, :t, :, :dv]
