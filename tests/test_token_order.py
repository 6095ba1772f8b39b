"""Window-first token order and LocalWindow2D in that order."""

import jax.numpy as jnp
import numpy as np
import pytest

from attnzoo.layers.masks import LocalWindow2D
from attnzoo.layers.token_order import (
    from_window_first,
    to_window_first,
    window_first_permutation,
)


def test_permutation_lists_tokens_window_by_window():
    # 4x4 grid, 2x2 windows: first window holds grid cells (0,0),(0,1),(1,0),(1,1).
    perm = window_first_permutation((4, 4), (2, 2))
    np.testing.assert_array_equal(perm[:8], [0, 1, 4, 5, 2, 3, 6, 7])
    assert sorted(perm) == list(range(16))


def test_round_trip_and_content():
    grid, window = (4, 6), (2, 3)
    x = jnp.arange(2 * 24 * 3).reshape(2, 24, 3)
    wf = to_window_first(x, grid, window)
    np.testing.assert_array_equal(wf, x[:, window_first_permutation(grid, window)])
    np.testing.assert_array_equal(from_window_first(wf, grid, window), x)
    # The second window-first token of window 1 is grid cell (0, 4).
    img = np.asarray(x[0, :, 0]).reshape(4, 6)
    assert wf[0, 7, 0] == img[0, 4]


def test_bad_input():
    with pytest.raises(ValueError, match="must be a multiple of the window"):
        window_first_permutation((4, 5), (2, 2))
    with pytest.raises(ValueError, match=r"x must be \[b, h\*w, ...\]"):
        to_window_first(jnp.zeros((1, 15, 2)), (4, 4), (2, 2))


def test_local2d_window_first_matches_permuted_row_major():
    grid, window, r = (6, 8), (3, 4), 2
    perm = window_first_permutation(grid, window)
    row_major = np.asarray(LocalWindow2D(grid, r).materialize(48, 48))[0, 0]
    wf = np.asarray(LocalWindow2D(grid, r, window=window).materialize(48, 48))[0, 0]
    np.testing.assert_array_equal(wf, row_major[np.ix_(perm, perm)])


def test_local2d_window_first_needs_fewer_blocks():
    # One 64-token block is one grid row (row-major) or one 8x8 window (window-first).
    grid, r, n = (64, 64), 6, 4096
    rm = LocalWindow2D(grid, r).block_lists(n, n, 64, 64)
    wf = LocalWindow2D(grid, r, window=(8, 8)).block_lists(n, n, 64, 64)
    assert rm.max_k == 2 * r + 1  # the rows within the radius
    assert wf.max_k == 9  # a window and its 8 neighbours
