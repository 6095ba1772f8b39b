"""A two-layer MLP evaluated in row chunks, so its hidden activations never exist whole.

For narrow models on long inputs (Pathformer: d 4 → 64 → 4 over 86,016 positions per
batch) the hidden array is ~16x the input and the step is bound by memory traffic over
it: the matmuls, the activation, dropout's mask and the gradients each stream 22 MB per
expert. Here a loop over chunks of positions computes `fc2(dropout(act(fc1(x))))` per
chunk in cache; the backward recomputes the chunk's hidden values (dropout's hash mask,
`layers.dropout`, is drawn again from the same counters) and accumulates the weight
gradients. Same values as the plain composition up to float summation order.
"""

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from attnzoo.layers.dropout import Dropout, apply_keep_mask, keep_mask
from attnzoo.layers.linear import weight_grad


def mlp_in_row_chunks(
    x: jax.Array,
    fc1: nnx.Linear,
    fc2: nnx.Linear,
    activation,
    dropout: Dropout,
    *,
    rows_per_chunk: int = 4096,
    rngs=None,
) -> jax.Array:
    """`fc2(dropout(activation(fc1(x))))` for x `[batch, ..., d_in]` → `[batch, ..., d_out]`.

    Chunks run along the positions (`...`), never the batch, so a batch-sharded x stays
    sharded; a chunk holds about `rows_per_chunk` rows of the whole batch. `rngs`: the
    step's streams for dropout (default: the layer's own)."""
    if dropout.rate >= 1.0:
        raise ValueError(f"mlp_in_row_chunks takes a dropout rate below 1, not {dropout.rate}")
    batch, d_in = x.shape[0], x.shape[-1]
    rows = math.prod(x.shape[1:-1])
    chunk = min(rows, max(1, -(-rows_per_chunk // batch)))
    seed = dropout.seed(rngs)
    rate = 0.0 if seed is None else dropout.rate
    seed = jnp.zeros((2,), jnp.uint32) if seed is None else seed
    params = [_bias_or_zeros(fc1), fc2.kernel[...], _bias_or_zeros(fc2)]
    out = _chunked_mlp(
        activation, rate, chunk, x.reshape(batch, rows, d_in), fc1.kernel[...], *params, seed
    )
    return out.reshape(*x.shape[:-1], out.shape[-1])


def _bias_or_zeros(fc: nnx.Linear) -> jax.Array:
    return fc.bias[...] if fc.bias is not None else jnp.zeros(fc.out_features, jnp.float32)


def _chunks(rows: int, chunk: int) -> int:
    return -(-rows // chunk)


def _pad_rows(z: jax.Array, chunk: int) -> jax.Array:
    extra = _chunks(z.shape[1], chunk) * chunk - z.shape[1]
    return jnp.pad(z, ((0, 0), (0, extra), (0, 0))) if extra else z


def _hidden(rate, rows, xc, w1, b1, seed, start):
    """(pre-activation `[B, c, H]`, keep mask or None) of the chunk at row `start`."""
    pre = xc @ w1 + b1
    if not rate:
        return pre, None
    hidden = w1.shape[1]
    keep = keep_mask(
        seed, pre.shape, rate, offset=start * hidden, strides=(rows * hidden, hidden, 1)
    )
    return pre, keep


def _drop(h, keep, rate):
    return h if keep is None else apply_keep_mask(h, keep, rate)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _chunked_mlp(activation, rate, chunk, x, w1, b1, w2, b2, seed):
    return _forward(activation, rate, chunk, x, w1, b1, w2, b2, seed)[0]


def _forward(activation, rate, chunk, x, w1, b1, w2, b2, seed):
    batch, rows, _ = x.shape
    padded = _pad_rows(x, chunk)

    def body(i, out):
        start = i * chunk
        xc = lax.dynamic_slice_in_dim(padded, start, chunk, axis=1)
        pre, keep = _hidden(rate, rows, xc, w1, b1, seed, start)
        y = _drop(activation(pre), keep, rate) @ w2 + b2
        return lax.dynamic_update_slice_in_dim(out, y, start, axis=1)

    out = jnp.zeros((batch, padded.shape[1], w2.shape[1]), x.dtype)
    out = lax.fori_loop(0, _chunks(rows, chunk), body, out)
    return out[:, :rows], (x, w1, b1, w2, seed)


def _backward(activation, rate, chunk, residuals, dy):
    x, w1, b1, w2, seed = residuals
    rows = x.shape[1]
    padded, dy_padded = _pad_rows(x, chunk), _pad_rows(dy, chunk)

    def body(i, grads):
        dx, dw1, db1, dw2 = grads
        start = i * chunk
        xc = lax.dynamic_slice_in_dim(padded, start, chunk, axis=1)
        dyc = lax.dynamic_slice_in_dim(dy_padded, start, chunk, axis=1)
        pre, keep = _hidden(rate, rows, xc, w1, b1, seed, start)
        h, activation_vjp = jax.vjp(activation, pre)
        dw2 = dw2 + weight_grad(_drop(h, keep, rate), dyc)
        (dpre,) = activation_vjp(_drop(dyc @ w2.T, keep, rate))
        dw1 = dw1 + weight_grad(xc, dpre)
        db1 = db1 + dpre.sum((0, 1))
        dx = lax.dynamic_update_slice_in_dim(dx, dpre @ w1.T, start, axis=1)
        return dx, dw1, db1, dw2

    zeros = (jnp.zeros_like(padded), jnp.zeros_like(w1), jnp.zeros_like(b1), jnp.zeros_like(w2))
    dx, dw1, db1, dw2 = lax.fori_loop(0, _chunks(rows, chunk), body, zeros)
    return dx[:, :rows], dw1, db1, dw2, dy.sum((0, 1)), None


_chunked_mlp.defvjp(_forward, _backward)
