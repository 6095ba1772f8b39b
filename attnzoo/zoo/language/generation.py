"""Autoregressive generation: KV-cached decoding or full recomputation, with temperature,
top-k and top-p (nucleus) sampling.

Both paths draw token `i` from the logits of the last position with key `fold_in(rng, i)`,
so with equal logits they generate the same tokens; the cached path computes each new
token's logits from the cache in one position, the other re-runs the whole prefix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def filter_logits(logits: jax.Array, *, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """`logits [b, V]` with everything outside the top-k and outside the smallest set of
    tokens whose probability reaches `top_p` set to -inf (0 / 1.0: no filter)."""
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]  # [b, 1]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p < 1.0:
        order = jnp.argsort(-logits, axis=-1)  # [b, V]
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of the better tokens
        drop_sorted = before >= top_p  # the first token is always kept
        drop = (
            jnp.zeros_like(drop_sorted).at[jnp.arange(len(logits))[:, None], order].set(drop_sorted)
        )
        logits = jnp.where(drop, -jnp.inf, logits)
    return logits


def choose(logits: jax.Array, key: jax.Array, *, temperature: float, top_k: int, top_p: float):
    """Next tokens `[b]` int32 from `logits [b, V]`: greedy at temperature 0."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _forward(model, tokens, **kwargs):
    """The model's logits, its sown intermediates (max logits, aux losses) discarded."""
    return nnx.capture(lambda m, x: m(x, **kwargs), nnx.Intermediate)(model, tokens)[0]


def generate(
    model: nnx.Module,
    prompt: np.ndarray,
    *,
    max_new_tokens: int,
    rng: jax.Array,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    use_cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Continues `prompt` (int `[b, p]`, p >= 1) by `max_new_tokens` tokens.

    Returns `(tokens [b, max_new_tokens] int32, logits [b, max_new_tokens, V] float32)`,
    the logits each token was drawn from. Needs `p + max_new_tokens <= model.max_length`
    with the cache (the cache's size) and without it (the positions RoPE was trained on).
    """
    prompt = np.asarray(prompt, np.int32)
    b, p = prompt.shape
    total = p + max_new_tokens
    if p < 1:
        raise ValueError("the prompt must hold at least one token")
    if total > model.max_length:
        raise ValueError(
            f"prompt of {p} tokens + {max_new_tokens} new tokens = {total} exceeds the "
            f"model's context of {model.max_length} tokens"
        )
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    if use_cache:
        model.init_cache(b, total)
        graphdef, state = nnx.split(model)

        @jax.jit
        def step(state, tokens, i):
            model = nnx.merge(graphdef, state)
            logits = _forward(model, tokens, decode=True)[:, -1]  # [b, V]
            token = choose(logits, jax.random.fold_in(rng, i), **settings)
            return nnx.state(model), token, logits

        state, token, logits = step(state, jnp.asarray(prompt), 0)  # prefill
        out_tokens, out_logits = [token], [logits]
        for i in range(1, max_new_tokens):
            state, token, logits = step(state, token[:, None], i)
            out_tokens.append(token)
            out_logits.append(logits)
    else:
        graphdef, state = nnx.split(model)

        @jax.jit
        def step(tokens, length, i):  # tokens [b, total], the first `length` valid
            logits = _forward(nnx.merge(graphdef, state), tokens)  # [b, total, V]
            logits = jax.lax.dynamic_index_in_dim(logits, length - 1, axis=1, keepdims=False)
            return choose(logits, jax.random.fold_in(rng, i), **settings), logits

        tokens = np.zeros((b, total), np.int32)
        tokens[:, :p] = prompt
        out_tokens, out_logits = [], []
        for i in range(max_new_tokens):
            token, logits = step(jnp.asarray(tokens), p + i, i)
            tokens[:, p + i] = np.asarray(token)
            out_tokens.append(token)
            out_logits.append(logits)
    return np.stack(jax.device_get(out_tokens), 1), np.stack(jax.device_get(out_logits), 1)
