"""node2vec embeddings: biased walks (`random_walks`) + skip-gram with negative sampling
(word2vec SGNS, Mikolov et al. 2013) trained in JAX.

For every (center, context) pair within `window` steps of a walk, and `negatives` nodes
drawn from the unigram distribution of the walks raised to 3/4:
    loss = -log σ(u_center · v_context) - Σ_neg log σ(-u_center · v_neg)
`u` (the returned embedding) starts uniform in ±0.5/dim and `v` at zero, as word2vec.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from attnzoo.graph.random_walks import node2vec_walks


def context_pairs(walks: np.ndarray, window: int) -> np.ndarray:
    """int32 `[pairs, 2]` (center, context) of nodes at most `window` steps apart."""
    pairs = []
    for offset in range(1, window + 1):
        a, b = walks[:, :-offset].ravel(), walks[:, offset:].ravel()
        ok = (a >= 0) & (b >= 0)
        pairs += [np.stack([a[ok], b[ok]], 1), np.stack([b[ok], a[ok]], 1)]
    return np.concatenate(pairs).astype(np.int32)


def _sgns_loss(params, centers, contexts, negatives):
    u = params["u"][centers]  # [B, D]
    pos = jnp.einsum("bd,bd->b", u, params["v"][contexts])
    neg = jnp.einsum("bd,bkd->bk", u, params["v"][negatives])
    return -(jax.nn.log_sigmoid(pos) + jax.nn.log_sigmoid(-neg).sum(-1)).mean()


def skipgram(
    walks: np.ndarray,
    num_nodes: int,
    *,
    dim: int,
    window: int,
    negatives: int = 5,
    epochs: int = 1,
    batch_size: int = 4096,
    learning_rate: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """float32 `[num_nodes, dim]` SGNS embedding of the nodes of `walks` (Adam, shuffled
    minibatches of pairs)."""
    pairs = context_pairs(walks, window)
    if not len(pairs):
        raise ValueError("the walks have no (center, context) pairs: walks too short?")
    counts = np.bincount(walks[walks >= 0], minlength=num_nodes).astype(np.float64)
    noise = np.log(counts**0.75 / (counts**0.75).sum() + 1e-30)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    params = {
        "u": jnp.asarray(rng.uniform(-0.5 / dim, 0.5 / dim, (num_nodes, dim)), jnp.float32),
        "v": jnp.zeros((num_nodes, dim), jnp.float32),
    }
    tx = optax.adam(learning_rate)
    opt_state = tx.init(params)
    noise = jnp.asarray(noise, jnp.float32)

    @jax.jit
    def step(params, opt_state, batch, key):
        neg = jax.random.categorical(key, noise, shape=(len(batch), negatives))
        loss, grads = jax.value_and_grad(_sgns_loss)(params, batch[:, 0], batch[:, 1], neg)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    steps = max(1, len(pairs) // batch_size)
    for _ in range(epochs):
        order = rng.permutation(len(pairs))[: steps * batch_size].reshape(steps, -1)
        for idx in order:
            key, sub = jax.random.split(key)
            params, opt_state, _ = step(params, opt_state, jnp.asarray(pairs[idx]), sub)
    return np.asarray(params["u"], np.float32)


def node2vec(
    adjacency: np.ndarray,
    *,
    dim: int,
    p: float,
    q: float,
    num_walks: int,
    walk_length: int,
    window: int,
    epochs: int = 1,
    batch_size: int = 4096,
    seed: int = 0,
) -> np.ndarray:
    """float32 `[N, dim]` node2vec embedding of a weighted directed graph (SGNS with 5
    negatives, Adam 0.01, `epochs` passes over the context pairs)."""
    walks = node2vec_walks(
        adjacency, num_walks=num_walks, walk_length=walk_length, p=p, q=q, seed=seed
    )
    return skipgram(
        walks,
        len(adjacency),
        dim=dim,
        window=window,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
