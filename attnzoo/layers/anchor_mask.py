"""Local attention on a grid plus global anchor tokens (Scale-DiT's hierarchical mask)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers import masks
from attnzoo.layers.masks import LocalWindow2D, PositionalMask


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=[], meta_fields=["local", "num_anchors"]
)
@dataclasses.dataclass(frozen=True)
class LocalWithAnchors(PositionalMask):
    """Sequence `[grid tokens (n = H*W, in `local`'s order) | num_anchors anchor tokens]`:
    a grid token sees the grid tokens of its `local` window and every anchor; an anchor sees
    every anchor and no grid token. Block lists: `local`'s, plus all anchor key blocks.
    """

    local: LocalWindow2D
    num_anchors: int

    def __post_init__(self):
        if not isinstance(self.local, LocalWindow2D):
            raise TypeError(f"local must be a LocalWindow2D, got {type(self.local).__name__}")
        masks._check_positive(num_anchors=self.num_anchors)

    @property
    def num_grid(self) -> int:
        return self.local.grid[0] * self.local.grid[1]

    def check(self, q_len, kv_len):
        n = self.num_grid + self.num_anchors
        if q_len != n or kv_len != n:
            raise ValueError(
                f"LocalWithAnchors holds {self.num_grid} grid + {self.num_anchors} anchor = {n} "
                f"tokens, got q_len={q_len}, kv_len={kv_len}"
            )

    def allowed_at(self, q_pos, k_pos):
        n = self.num_grid
        near = self.local.allowed_at(jnp.minimum(q_pos, n - 1), jnp.minimum(k_pos, n - 1))
        return (k_pos >= n) | ((q_pos < n) & near)

    def static_block_lists(self, q_len, kv_len, block_q, block_k):
        n = self.num_grid
        nq, nk = masks._cdiv(q_len, block_q), masks._cdiv(kv_len, block_k)
        local = self.local.static_block_lists(n, n, block_q, block_k)
        hit = np.zeros((nq, nk), dtype=bool)
        hit[: local.indices.shape[2], : masks._cdiv(n, block_k)] = masks._block_matrix_np(
            local, masks._cdiv(n, block_k)
        )
        hit[:, n // block_k :] = True  # anchor keys: seen by every query
        return masks._lists_from_block_matrix_np(hit)
