"""Position embeddings: fixed 2-D sin-cos tables and resampling of learned ones."""

import jax
import jax.numpy as jnp
import numpy as np


def sincos_2d(
    height: int, width: int, dim: int, *, temperature: float = 10_000.0, scale: float = 1.0
) -> np.ndarray:
    """2-D sin-cos embedding `[height*width, dim]` (row-major tokens), as in MoCo v3 / big_vision.

    The first half of the channels encodes the column (x), the second half the row (y):
    `[sin(x w), cos(x w), sin(y w), cos(y w)]` with `w_i = T^(-i/(dim/4))`. `scale`
    multiplies the coordinates (e.g. a coarse grid's positions placed on a finer one).
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    y, x = np.mgrid[:height, :width] * np.float64(scale)
    omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4))
    ax = x.reshape(-1)[:, None] * omega[None]  # [hw, dim/4]
    ay = y.reshape(-1)[:, None] * omega[None]
    table = np.concatenate([np.sin(ax), np.cos(ax), np.sin(ay), np.cos(ay)], axis=1)
    return table.astype(np.float32)


def resample_2d(table: np.ndarray, old_grid: tuple[int, int], new_grid: tuple[int, int]):
    """Learned 2-D position embeddings `[gh*gw, dim]` (row-major) resized bilinearly to
    `[nh*nw, dim]`, half-pixel centres and no antialiasing (big_vision's `resample_posemb`
    idea, PyTorch's `interpolate(mode="bilinear", align_corners=False)` arithmetic).
    The identity when the grids are equal."""
    table = np.asarray(table, np.float32)
    if table.shape[0] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position table of {table.shape[0]} rows is not a {old_grid} grid")
    grid = table.reshape(*old_grid, table.shape[-1])
    out = jax.image.resize(grid, (*new_grid, table.shape[-1]), "bilinear", antialias=False)
    return np.asarray(out).reshape(new_grid[0] * new_grid[1], table.shape[-1])


def resample_1d(table: np.ndarray, new_len: int) -> np.ndarray:
    """Learned sequence position embeddings `[n, dim]` linearly resized to `[new_len, dim]`
    (half-pixel centres, no antialiasing); the identity at the same length."""
    table = np.asarray(table, np.float32)
    out = jax.image.resize(table, (new_len, table.shape[-1]), "linear", antialias=False)
    return np.asarray(out)


def timestep_embedding(t, dim: int, *, max_period: float = 10_000.0):
    """Sinusoidal embedding `[b, dim]` of (possibly fractional) timesteps `t` `[b]`, as in
    DiT / ADM: `[cos(t f), sin(t f)]` with `f_i = exp(-ln(max_period) i / (dim/2))`
    (cos first; an odd `dim` gets one zero column)."""
    half = dim // 2
    freqs = jnp.exp(-np.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]  # [b, half]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros_like(emb[:, :1])], axis=-1)
    return emb
