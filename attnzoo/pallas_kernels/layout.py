"""How inputs are laid out for the kernels: heads first, lengths padded to the blocks, head
dims padded to powers of two on GPU (Triton tiles), mask operands padded alike."""

from __future__ import annotations

import jax
import jax.numpy as jnp

HEAD_DIMS = (32, 256)


def pow2_ceil(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def check_head_dims(d: int, dv: int) -> None:
    """Refuse head dims outside :data:`HEAD_DIMS` with one line naming the alternative."""
    lo, hi = HEAD_DIMS
    for name, dim in (("q/k", d), ("v", dv)):
        if not lo <= dim <= hi:
            raise ValueError(
                f"impl='pallas' takes head dims {lo}..{hi}, got {name} head dim {dim}; "
                "use impl='xla' or 'reference'"
            )


def head_width(dim: int, backend: str) -> int:
    """Head dim as the kernel sees it (Triton tiles need powers of two; zero padded)."""
    return pow2_ceil(dim) if backend == "gpu" else dim


def _pad(x: jax.Array, axis: int, size: int) -> jax.Array:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad)


def heads_first(x: jax.Array, length: int, width: int) -> jax.Array:
    """``[b, n, h, e]`` -> ``[b, h, length, width]``, zero padded."""
    return _pad(_pad(x, 1, length), 3, width).transpose(0, 2, 1, 3)


def pad_operand(op: jax.Array, tp: int, sp: int) -> jax.Array:
    """Mask operand ``[B|1, H|1, t|1, s|1]`` -> ``[B|1, H|1, tp|1, sp|1]``."""
    op = _pad(op, 2, tp) if op.shape[2] > 1 else op
    return _pad(op, 3, sp) if op.shape[3] > 1 else op


def padded(n: int, block: int) -> int:
    return -(-n // block) * block
