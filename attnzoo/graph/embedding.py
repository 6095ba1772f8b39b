"""One entry point for the spatial embedding of a graph, cached per (graph, method, params).

The cache file is `<cache_dir>/<method>-<sha256[:16]>.npy`, the hash over the adjacency's
shape and float64 bytes, the method and its parameters; written atomically (temp + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from attnzoo.graph.laplacian import check_adjacency, laplacian_eigenvectors
from attnzoo.graph.node2vec import node2vec

METHODS = ("node2vec", "laplacian")


def cache_key(adjacency: np.ndarray, method: str, params: dict) -> str:
    """`<method>-<16 hex digits>` naming the embedding of this graph with these params."""
    a = check_adjacency(adjacency)
    digest = hashlib.sha256(repr(a.shape).encode() + a.tobytes())
    digest.update(json.dumps({"method": method, **params}, sort_keys=True).encode())
    return f"{method}-{digest.hexdigest()[:16]}"


def spatial_embedding(
    adjacency: np.ndarray,
    method: str,
    *,
    dim: int,
    cache_dir: str | os.PathLike[str] | None = None,
    **params,
) -> np.ndarray:
    """float32 `[N, dim]`: `laplacian` (`laplacian_eigenvectors`) or `node2vec` (`params`:
    p, q, num_walks, walk_length, window, epochs, seed), read from / written to
    `cache_dir` when given."""
    if method not in METHODS:
        raise ValueError(
            f"unknown spatial embedding {method!r}; choose one of {', '.join(METHODS)}"
        )
    params = {"dim": dim, **params}
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(adjacency, method, params)}.npy"
        if path.is_file():
            return np.load(path)
    if method == "laplacian":
        embedding = laplacian_eigenvectors(adjacency, **params)
    else:
        embedding = node2vec(adjacency, **params)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, embedding)
        os.replace(tmp, path)
    return embedding
