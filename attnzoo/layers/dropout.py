"""Dropout whose mask is a counter hash: cheap on CPU, and computable chunk by chunk.

`jax.random.bernoulli` draws one threefry word per element, and XLA's CPU code runs
threefry's rounds as a loop over whole arrays: ~90 ms for a `[128, 96, 7, 64]` mask on
this project's 2-core machine, more than the matmuls around it (benchmarks/README.md,
timeseries). Here the stream's key gives one 64-bit seed (one threefry call), and element
`i` of the flattened array is kept when `fmix32(fmix32(i ^ s0) ^ s1) >= rate · 2^32`
(MurmurHash3's bijective finaliser, twice): a handful of integer ops per element that XLA
fuses into the consumer, and element `i`'s draw does not depend on how the array is cut,
so a chunked computation (`layers.chunked_mlp`) sees the same mask as the whole one.
Seeds drawn from different keys give unrelated masks (tests/test_dropout.py); hand-made
seeds that share a word can alias (the first word enters by xor). Counters wrap at 2^32
elements (masks larger than that repeat).
"""

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax


def _fmix32(h: jax.Array) -> jax.Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def keep_mask(
    seed: jax.Array, shape: tuple[int, ...], rate: float, *, offset=0, strides=None
) -> jax.Array:
    """bool `shape`: which elements dropout keeps (each with probability `1 - rate`) for
    seed u32 `[2]`. Element counters are `offset + Σ index·stride` (row-major `shape` by
    default): a block of a larger array passes its first element's flat index and the
    larger array's strides, and draws exactly that array's mask."""
    if strides is None:
        strides, size = [], 1
        for dim in reversed(shape):
            strides.insert(0, size)
            size *= dim
    counter = jnp.asarray(offset, jnp.uint32)
    for axis, stride in enumerate(strides):
        counter = counter + lax.broadcasted_iota(jnp.uint32, shape, axis) * jnp.uint32(stride)
    bits = _fmix32(_fmix32(counter ^ seed[0]) ^ seed[1])
    return bits >= jnp.uint32(min(round(rate * 2**32), 2**32 - 1))


def apply_keep_mask(x: jax.Array, keep: jax.Array, rate: float) -> jax.Array:
    """x where kept, scaled by `1 / (1 - rate)`; 0 elsewhere."""
    return jnp.where(keep, x * (1 / (1 - rate)), jnp.zeros((), x.dtype))


class Dropout(nnx.Dropout):
    """`nnx.Dropout` (same arguments, streams and train/eval switch) with the hash mask."""

    def seed(self, rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None) -> jax.Array | None:
        """u32 `[2]` for this call's mask, or None when the layer is off (eval, rate 0)."""
        if self.deterministic or self.rate == 0.0:
            return None
        rngs = self.rngs if rngs is None else rngs
        if rngs is None:
            raise ValueError("Dropout is in training mode but has no rngs stream or key")
        if isinstance(rngs, nnx.Rngs):
            key = rngs[self.rng_collection]()
        elif isinstance(rngs, nnx.RngStream):
            key = rngs()
        else:
            key = rngs
        return jax.random.bits(key, (2,), jnp.uint32)

    def __call__(self, inputs: jax.Array, *, rngs=None) -> jax.Array:
        if self.broadcast_dims:  # a mask shared along axes: nnx's own draw
            return super().__call__(inputs, rngs=rngs)
        seed = self.seed(rngs)
        if seed is None:
            return inputs
        if self.rate >= 1.0:
            return jnp.zeros_like(inputs)
        return apply_keep_mask(inputs, keep_mask(seed, inputs.shape, self.rate), self.rate)
