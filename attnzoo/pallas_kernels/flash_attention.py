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
from attnzoo.pallas_kernels.plan import Plan
from attnzoo.pallas_kernels.tpu import flash_attention as tpu_kernels

__all__ = ["BACKENDS", "HEAD_DIMS", "choose_blocks", "flash_attention"]

BACKENDS = {"gpu": gpu_kernels, "tpu": tpu_kernels}
HEAD_DIMS = (32, 256)
_DEFAULT_BLOCK = {"gpu": 64, "tpu": 128}
_MIN_BLOCK = {"gpu": 16, "tpu": 8}


def _pow2_ceil(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


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
        block = max(lo, min(_DEFAULT_BLOCK[backend], _pow2_ceil(length)))
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


def _check_head_dims(q, v) -> None:
    lo, hi = HEAD_DIMS
    for name, dim in (("q/k", q.shape[-1]), ("v", v.shape[-1])):
        if not lo <= dim <= hi:
            raise ValueError(
                f"impl='pallas' takes head dims {lo}..{hi}, got {name} head dim {dim}; "
                "use impl='xla' or 'reference'"
            )


def _pad(x, axis: int, size: int):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad)


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
    _check_head_dims(q, v)
    kernels = BACKENDS[backend]
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    tp, sp = -(-t // block_q) * block_q, -(-s // block_k) * block_k
    dp, dvp = (_pow2_ceil(d), _pow2_ceil(dv)) if backend == "gpu" else (d, dv)

    def heads_first(x, n, width):  # [b, n0, h, e] -> [b, h, n, width], zero padded
        return _pad(_pad(x, 1, n), 3, width).transpose(0, 2, 1, 3)

    def pad_operand(op):  # [B|1, H|1, t|1, s|1] -> [B|1, H|1, tp|1, sp|1]
        op = _pad(op, 2, tp) if op.shape[2] > 1 else op
        return _pad(op, 3, sp) if op.shape[3] > 1 else op

    ops = tuple(pad_operand(op) for op in operands)
    plan = Plan(fn, float(scale), block_q, block_k, t, s, hq // hkv, interpret)
    lists_t = lists.transpose(sp // block_k)
    out = _flash(
        kernels,
        plan,
        heads_first(q, tp, dp),
        heads_first(k, sp, dp),
        heads_first(v, sp, dvp),
        ops,
        lists,
        lists_t,
    )  # [b, hq, tp, dvp]
    return out.transpose(0, 2, 1, 3)[:, :t, :, :dv]
