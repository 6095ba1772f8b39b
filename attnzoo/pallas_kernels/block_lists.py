"""Per query block, the key blocks a kernel must visit (and the transpose for backward)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["BlockLists", "is_concrete"]


def is_concrete(x) -> bool:
    """True when ``x`` holds values known at trace time (numpy, or a non-traced jax array)."""
    return not isinstance(x, jax.core.Tracer)


class BlockLists(NamedTuple):
    """Per query block, the key blocks holding at least one allowed (q, k) pair.

    Attributes:
      indices: int32 ``[B|1, H|1, nq, max_k]``; key-block ids in ascending order, the unused
        tail padded with ``-1`` (use :meth:`repeat_last` for a DMA-friendly padding).
      counts: int32 ``[B|1, H|1, nq]``; the number of valid entries per row.
    """

    indices: jax.Array
    counts: jax.Array

    @property
    def max_k(self) -> int:
        return self.indices.shape[-1]

    def repeat_last(self) -> jax.Array:
        """``indices`` with padding slots repeating the last valid id (0 for empty rows).

        Kernels whose ``index_map`` cannot take ``-1`` use this: a repeated block index makes
        the pipeline skip the copy, and ``counts`` tells the kernel to skip the compute.
        """
        last = jnp.take_along_axis(
            self.indices, jnp.maximum(self.counts - 1, 0)[..., None], axis=-1
        )  # [B, H, nq, 1]
        return jnp.where(self.indices >= 0, self.indices, jnp.maximum(last, 0))

    def matrix(self, nk: int) -> jax.Array:
        """bool ``[B|1, H|1, nq, nk]``: is key block ``m`` listed for query block ``n``."""
        idx = jnp.where(self.indices >= 0, self.indices, nk)
        hit = jnp.zeros((*idx.shape[:-1], nk + 1), bool)
        hit = jnp.put_along_axis(hit, idx, True, axis=-1, inplace=False)
        return hit[..., :nk]

    def transpose(self, nk: int) -> BlockLists:
        """Per key block, the query blocks listing it: ``[B|1, H|1, nk, max_q]``.

        ``max_q`` is tight when the lists are concrete, else ``nq``.
        """
        if is_concrete(self.indices):
            with jax.ensure_compile_time_eval():
                return self._transpose(nk, tight=True)
        return self._transpose(nk, tight=False)

    def _transpose(self, nk: int, tight: bool) -> BlockLists:
        hit = jnp.swapaxes(self.matrix(nk), -1, -2)  # [B, H, nk, nq]
        nq = hit.shape[-1]
        counts = jnp.sum(hit, axis=-1, dtype=jnp.int32)
        width = max(int(np.max(np.asarray(counts), initial=0)), 1) if tight else nq
        ids = jnp.sort(jnp.where(hit, jnp.arange(nq, dtype=jnp.int32), nq), axis=-1)[..., :width]
        return BlockLists(jnp.where(ids < nq, ids, -1).astype(jnp.int32), counts)
