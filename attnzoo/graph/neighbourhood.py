"""How well an embedding preserves graph neighbourhoods."""

import numpy as np

from attnzoo.graph.laplacian import check_adjacency


def neighbourhood_preservation(embedding: np.ndarray, adjacency: np.ndarray) -> float:
    """Mean over nodes with neighbours of |kNN(i) ∩ N(i)| / k, where N(i) are the graph
    neighbours of i (an edge either way, self excluded), k = |N(i)| and kNN(i) the k
    nearest other nodes by cosine similarity of the embedding. 1: neighbours are nearest;
    a random embedding scores about k / (N - 1)."""
    a = check_adjacency(adjacency)
    e = np.asarray(embedding, np.float64)
    if e.ndim != 2 or len(e) != len(a):
        raise ValueError(f"embedding must be [{len(a)}, D], got shape {e.shape}")
    linked = (a > 0) | (a.T > 0)
    np.fill_diagonal(linked, False)
    unit = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    scores = []
    for i in np.flatnonzero(linked.any(1)):
        k = int(linked[i].sum())
        nearest = np.argsort(-similarity[i], kind="stable")[:k]
        scores.append(linked[i, nearest].mean())
    return float(np.mean(scores))
