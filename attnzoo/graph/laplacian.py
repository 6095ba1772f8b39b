"""Laplacian eigenvector embedding (the cheap spatial embedding; Belkin & Niyogi 2003,
the Laplacian positional encoding of Dwivedi et al. 2020)."""

import numpy as np


def check_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """A square, finite, non-negative `[N, N]` float64 array, else a one-line ValueError."""
    a = np.asarray(adjacency, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square [N, N] array, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError("adjacency must hold finite non-negative edge weights")
    return a


def laplacian_eigenvectors(adjacency: np.ndarray, dim: int) -> np.ndarray:
    """float32 `[N, dim]`: eigenvectors of the symmetric normalised Laplacian
    `I - D^-1/2 W D^-1/2` of `W = (A + Aᵀ) / 2` without self-loops, for the `dim` smallest
    eigenvalues after the first (trivial) one, in ascending order; each sign fixed so its
    largest-magnitude entry is positive; zero columns pad when `dim >= N`."""
    a = check_adjacency(adjacency)
    w = (a + a.T) / 2
    np.fill_diagonal(w, 0.0)
    degree = w.sum(1)
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.where(degree > 0, degree, 1)), 0.0)
    laplacian = np.eye(len(w)) - inv_sqrt[:, None] * w * inv_sqrt[None, :]
    _, vectors = np.linalg.eigh(laplacian)  # ascending eigenvalues
    vectors = vectors[:, 1 : dim + 1]
    signs = np.sign(vectors[np.abs(vectors).argmax(0), np.arange(vectors.shape[1])])
    vectors = vectors * np.where(signs == 0, 1, signs)
    out = np.zeros((len(w), dim), np.float32)
    out[:, : vectors.shape[1]] = vectors
    return out
