"""node2vec's biased second-order random walks (Grover & Leskovec, KDD 2016).

From the previous node `t` at node `v`, the next node `x` is drawn with probability
proportional to `w(v, x) · α(t, x)`: α = 1/p when x = t (return), 1 when there is an edge
x → t (as the reference `node2vec.py`: `G.has_edge(x, t)`), else 1/q. The first step from
the start node is first-order (∝ w(v, x)). The graph is directed and weighted (GMAN's
setting); a node without out-edges ends its walk (the rest is padded with -1).
"""

import numpy as np

from attnzoo.graph.laplacian import check_adjacency


def node2vec_walks(
    adjacency: np.ndarray, *, num_walks: int, walk_length: int, p: float, q: float, seed: int
) -> np.ndarray:
    """int32 `[num_walks · N, walk_length]`: `num_walks` walks from every node (rounds of
    all nodes, each round in a shuffled order), all walkers advanced together."""
    a = check_adjacency(adjacency)
    if p <= 0 or q <= 0 or num_walks < 1 or walk_length < 1:
        raise ValueError(
            f"need p, q > 0 and num_walks, walk_length >= 1; got {p}, {q}, "
            f"{num_walks}, {walk_length}"
        )
    rng = np.random.default_rng(seed)
    n = len(a)
    starts = np.concatenate([rng.permutation(n) for _ in range(num_walks)])
    walks = np.full((len(starts), walk_length), -1, np.int32)
    walks[:, 0] = starts
    edge = a > 0
    for step in range(1, walk_length):
        alive = np.flatnonzero(walks[:, step - 1] >= 0)
        v = walks[alive, step - 1]
        weights = a[v]  # [W, N]
        if step > 1:
            t = walks[alive, step - 2]
            bias = np.where(edge[:, t].T, 1.0, 1.0 / q)  # edge x → t
            bias[np.arange(len(t)), t] = 1.0 / p
            weights = weights * bias
        total = weights.sum(1)
        moving = total > 0
        cumulative = np.cumsum(weights[moving], 1)
        draw = rng.random(moving.sum()) * total[moving]
        nxt = (cumulative < draw[:, None]).sum(1)
        walks[alive[moving], step] = np.minimum(nxt, n - 1)
    return walks
