"""The static description of one block-sparse attention call, shared by every kernel."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static parameters of a kernel launch.

    Attributes:
      fn: the mask's pointwise function ``fn(q_pos, k_pos, *values) -> bool``.
      scale: logit scale.
      block_q, block_k: tile sizes (padded lengths are multiples of them).
      q_len, kv_len: true (unpadded) lengths; positions beyond them are masked.
      group: query heads per kv head (GQA).
      interpret: ``False`` to compile, else the interpret-mode argument of ``pallas_call``.
    """

    fn: Callable[..., Any]
    scale: float
    block_q: int
    block_k: int
    q_len: int
    kv_len: int
    group: int
    interpret: Any = False
