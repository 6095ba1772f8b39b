"""Token orders on a 2-D grid: row-major <-> window-first (region by region).

Window-first order lists the tokens of window 0 first (windows numbered row-major over the
grid of windows), each window's tokens row-major inside it. In that order every window is
a contiguous block of ``window[0] * window[1]`` tokens, so window-level masks
(``BlockSparse`` routing, local windows) become block masks the kernels can skip.
"""

import jax
import numpy as np


def _check(grid: tuple[int, int], window: tuple[int, int]) -> None:
    if len(grid) != 2 or len(window) != 2 or min(*grid, *window) <= 0:
        raise ValueError(f"grid and window must be two positive ints each, got {grid}, {window}")
    if grid[0] % window[0] or grid[1] % window[1]:
        raise ValueError(f"grid {tuple(grid)} must be a multiple of the window {tuple(window)}")


def _check_tokens(x: jax.Array, grid: tuple[int, int]) -> None:
    if x.ndim < 2 or x.shape[1] != grid[0] * grid[1]:
        raise ValueError(
            f"x must be [b, h*w, ...] with h*w = {grid[0] * grid[1]} tokens for grid "
            f"{tuple(grid)}, got shape {x.shape}"
        )


def window_first_permutation(grid: tuple[int, int], window: tuple[int, int]) -> np.ndarray:
    """int ``[h*w]`` ``perm`` with ``x_wf = x[:, perm]``: window-first position ``i`` holds
    row-major token ``perm[i]``. ``grid = (h, w)`` tokens, ``window = (wh, ww)`` tokens."""
    _check(grid, window)
    (h, w), (wh, ww) = grid, window
    rows = np.arange(h * w).reshape(h // wh, wh, w // ww, ww)  # [nh, wh, nw, ww]
    return rows.transpose(0, 2, 1, 3).reshape(-1)


def to_window_first(x: jax.Array, grid: tuple[int, int], window: tuple[int, int]) -> jax.Array:
    """``[b, h*w, ...]`` row-major tokens -> the same tokens in window-first order."""
    _check(grid, window)
    _check_tokens(x, grid)
    (h, w), (wh, ww) = grid, window
    b, rest = x.shape[0], x.shape[2:]
    x = x.reshape(b, h // wh, wh, w // ww, ww, *rest)
    return x.swapaxes(2, 3).reshape(b, h * w, *rest)


def from_window_first(x: jax.Array, grid: tuple[int, int], window: tuple[int, int]) -> jax.Array:
    """Inverse of :func:`to_window_first`: window-first ``[b, h*w, ...]`` -> row-major."""
    _check(grid, window)
    _check_tokens(x, grid)
    (h, w), (wh, ww) = grid, window
    b, rest = x.shape[0], x.shape[2:]
    x = x.reshape(b, h // wh, w // ww, wh, ww, *rest)
    return x.swapaxes(2, 3).reshape(b, h * w, *rest)
