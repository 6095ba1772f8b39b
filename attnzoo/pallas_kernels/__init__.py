"""Pallas kernels (GPU: Triton, TPU: Mosaic) and their pure-jnp references.

Layers call :func:`flash_attention` (the dispatcher); nothing here imports ``attnzoo.layers``.
"""

from attnzoo.pallas_kernels.block_lists import BlockLists
from attnzoo.pallas_kernels.differential import differential_attention
from attnzoo.pallas_kernels.flash_attention import (
    BACKENDS,
    HEAD_DIMS,
    choose_blocks,
    flash_attention,
)
from attnzoo.pallas_kernels.tiles import MASK_VALUE

__all__ = [
    "BACKENDS",
    "HEAD_DIMS",
    "MASK_VALUE",
    "BlockLists",
    "choose_blocks",
    "differential_attention",
    "flash_attention",
]
