"""Window-first token order for 2-D grids.

Row-major tokens of an ``(H, W)`` grid are regrouped tile by tile: the grid is cut into
``(wh, ww)`` windows, windows are taken in row-major order, and the tokens inside a window in
row-major order. A 2-D neighbourhood then spans few contiguous runs of tokens, so block-sparse
attention (``LocalWindow2D(..., window=...)``) and region routing (BiFormer) touch few key
blocks. ``H`` and ``W`` must be multiples of ``wh`` and ``ww``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

__all__ = [
    "from_window_first",
    "to_window_first",
    "window_first_permutation",
]


def _check(grid: tuple[int, int], window: tuple[int, int]) -> tuple[int, int, int, int]:
    if len(grid) != 2 or len(window) != 2:
        raise ValueError(f"grid and window must be (h, w) pairs, got {grid!r} and {window!r}")
    (gh, gw), (wh, ww) = grid, window
    for name, val in (("grid h", gh), ("grid w", gw), ("window h", wh), ("window w", ww)):
        if not isinstance(val, int | np.integer) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if gh % wh or gw % ww:
        raise ValueError(f"grid {tuple(grid)} must be a multiple of the window {tuple(window)}")
    return int(gh), int(gw), int(wh), int(ww)


@functools.cache
def _permutation(grid: tuple[int, int], window: tuple[int, int]) -> np.ndarray:
    gh, gw, wh, ww = _check(grid, window)
    rows = np.arange(gh * gw).reshape(gh // wh, wh, gw // ww, ww)
    perm = rows.transpose(0, 2, 1, 3).reshape(-1)  # window row, window col, inner row, col
    perm.setflags(write=False)
    return perm


def window_first_permutation(grid: tuple[int, int], window: tuple[int, int]) -> np.ndarray:
    """int ``[H*W]`` permutation ``perm`` with ``x_wf = x[:, perm]`` (row-major -> window-first)."""
    return _permutation(tuple(grid), tuple(window))


def _check_tokens(x: jax.Array, grid: tuple[int, int]) -> None:
    if x.ndim < 2 or x.shape[1] != grid[0] * grid[1]:
        raise ValueError(
            f"x must be [b, h*w, ...] with h*w={grid[0] * grid[1]} tokens for grid {tuple(grid)}, "
            f"got shape {x.shape}"
        )


def to_window_first(x: jax.Array, grid: tuple[int, int], window: tuple[int, int]) -> jax.Array:
    """``[b, h*w, ...]`` row-major tokens -> the same tokens in window-first order."""
    perm = window_first_permutation(grid, window)
    _check_tokens(x, grid)
    return x[:, perm]


def from_window_first(x: jax.Array, grid: tuple[int, int], window: tuple[int, int]) -> jax.Array:
    """Inverse of :func:`to_window_first`: window-first tokens -> row-major tokens."""
    perm = window_first_permutation(grid, window)
    _check_tokens(x, grid)
    return x[:, np.argsort(perm)]
