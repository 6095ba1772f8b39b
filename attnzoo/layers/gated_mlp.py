"""Gated feed-forward blocks: SwiGLU and Motif's PolyNorm-gated MLP.

``GatedMlp``: ``down(act(gate(x)) * up(x))``, no biases, ``x`` ``[..., e]`` -> ``[..., e]``,
hidden dim on the ``"mlp"`` axis. ``act``: SiLU (SwiGLU, Shazeer 2020) or :class:`PolyNorm`
(Motif-2): ``w0 N(x^3) + w1 N(x^2) + w2 N(x) + b`` with ``N(z) = z / sqrt(mean(z^2) + eps)``
over the last axis, ``w`` init 1/3, ``b`` init 0, eps 1e-6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import dense

__all__ = ["GATES", "GatedMlp", "PolyNorm"]


def _rms_normalize(z: jax.Array, eps: float) -> jax.Array:
    return z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + eps)


class PolyNorm(nnx.Module):
    """PolyNorm activation; three weights and one bias, shared by all channels."""

    def __init__(self, *, eps: float = 1e-6):
        self.eps = eps
        self.weight = nnx.Param(jnp.full((3,), 1.0 / 3.0))
        self.bias = nnx.Param(jnp.zeros(()))

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        w = self.weight[...]
        powers = (xf**3, xf**2, xf)
        out = sum(w[i] * _rms_normalize(p, self.eps) for i, p in enumerate(powers))
        return (out + self.bias[...]).astype(x.dtype)


GATES = ("swiglu", "polynorm")


class GatedMlp(nnx.Module):
    """``down(act(gate(x)) * up(x))``; ``gate``: ``"swiglu"`` (SiLU) or ``"polynorm"``."""

    def __init__(self, features: int, hidden: int, *, gate: str = "swiglu", rngs: nnx.Rngs):
        if gate not in GATES:
            raise ValueError(f"unknown MLP gate {gate!r}; choose one of {', '.join(GATES)}")
        self.gate_kind = gate
        self.gate = dense(features, hidden, ("embed", "mlp"), use_bias=False, rngs=rngs)
        self.up = dense(features, hidden, ("embed", "mlp"), use_bias=False, rngs=rngs)
        self.down = dense(hidden, features, ("mlp", "embed"), use_bias=False, rngs=rngs)
        self.polynorm = PolyNorm() if gate == "polynorm" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        g = self.gate(x)  # [..., mlp]
        act = nnx.silu(g) if self.polynorm is None else self.polynorm(g)
        return self.down(act * self.up(x))  # [..., e]
