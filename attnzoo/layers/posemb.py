"""Fixed position embeddings."""

import numpy as np


def sincos_2d(height: int, width: int, dim: int, *, temperature: float = 10_000.0) -> np.ndarray:
    """2-D sin-cos embedding `[height*width, dim]` (row-major tokens), as in MoCo v3 / big_vision.

    The first half of the channels encodes the column (x), the second half the row (y):
    `[sin(x w), cos(x w), sin(y w), cos(y w)]` with `w_i = T^(-i/(dim/4))`.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    y, x = np.mgrid[:height, :width]
    omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4))
    ax = x.reshape(-1)[:, None] * omega[None]  # [hw, dim/4]
    ay = y.reshape(-1)[:, None] * omega[None]
    table = np.concatenate([np.sin(ax), np.cos(ax), np.sin(ay), np.cos(ay)], axis=1)
    return table.astype(np.float32)
