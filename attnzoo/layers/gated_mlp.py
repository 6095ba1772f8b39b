"""Gated feed-forward blocks: SwiGLU and Motif's PolyNorm-gated MLP.

``GatedMlp``: ``down(act(gate(x)) * up(x))``, no biases, ``x`` ``[..., e]`` -> ``[..., e]``,
hidden dim on the ``"mlp"`` axis. ``act``: SiLU (SwiGLU, Shazeer 2020) or :class:`PolyNorm`
(Motif-2): ``w0 N(x^3) + w1 N(x^2) + w2 N(x) + b`` with ``N(z) = z / sqrt(mean(z^2) + eps)``
over the last axis, ``w`` init 1/3, ``b`` init 0, eps 1e-6.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import dense
from attnzoo.layers.projections import project_together

__all__ = ["GATES", "GatedMlp", "PolyNorm", "polynorm"]


def _normalized_powers(x: jax.Array, eps: float):
    """float32 ``N(x^3), N(x^2), N(x)`` and their ``1 / rms`` factors ``[..., 1]``."""
    xf = x.astype(jnp.float32)
    powers = (xf * xf * xf, xf * xf, xf)
    inv = tuple(jax.lax.rsqrt(jnp.mean(p * p, axis=-1, keepdims=True) + eps) for p in powers)
    return tuple(p * r for p, r in zip(powers, inv, strict=True)), inv


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def polynorm(x: jax.Array, weight: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """``weight[0] N(x^3) + weight[1] N(x^2) + weight[2] N(x) + bias`` over the last axis of
    ``x [..., c]``, float32 math, output in ``x.dtype``.

    The backward keeps ``x`` and the three ``[..., 1]`` factors and recomputes the powers in
    one pass (closed form of the RMS-norm gradient), where autodiff would keep the three
    powers and their normalised copies: the largest elementwise cost of the Motif MLP."""
    return _polynorm_fwd(x, weight, bias, eps)[0]


def _polynorm_fwd(x, weight, bias, eps):
    normed, inv = _normalized_powers(x, eps)
    out = sum(w * n for w, n in zip(weight.astype(jnp.float32), normed, strict=True))
    return (out + bias).astype(x.dtype), (x, weight, bias, inv)


def _polynorm_bwd(eps, residuals, g):
    x, weight, bias, inv = residuals
    xf, g = x.astype(jnp.float32), g.astype(jnp.float32)
    powers = (xf * xf * xf, xf * xf, xf)
    slopes = (3 * xf * xf, 2 * xf, 1.0)  # d(x^k)/dx
    dx, dw = 0.0, []
    for w, p, r, slope in zip(weight.astype(jnp.float32), powers, inv, slopes, strict=True):
        n = p * r
        dw.append(jnp.sum(g * n))
        gn = w * g  # d/dN
        dx = dx + slope * r * (gn - n * jnp.mean(gn * n, axis=-1, keepdims=True))
    db = jnp.sum(g).astype(bias.dtype)
    return dx.astype(x.dtype), jnp.stack(dw).astype(weight.dtype), db


polynorm.defvjp(_polynorm_fwd, _polynorm_bwd)


class PolyNorm(nnx.Module):
    """PolyNorm activation; three weights and one bias, shared by all channels."""

    def __init__(self, *, eps: float = 1e-6):
        self.eps = eps
        self.weight = nnx.Param(jnp.full((3,), 1.0 / 3.0))
        self.bias = nnx.Param(jnp.zeros(()))

    def __call__(self, x: jax.Array) -> jax.Array:
        return polynorm(x, self.weight[...], self.bias[...], self.eps)


GATES = ("swiglu", "polynorm")


class GatedMlp(nnx.Module):
    """``down(act(gate(x)) * up(x))``; ``gate``: ``"swiglu"`` (SiLU) or ``"polynorm"``."""

    def __init__(self, features: int, hidden: int, *, gate: str = "swiglu", rngs: nnx.Rngs):
        if gate not in GATES:
            raise ValueError(f"unknown MLP gate {gate!r}; choose one of {', '.join(GATES)}")
        self.gate = dense(features, hidden, ("embed", "mlp"), use_bias=False, rngs=rngs)
        self.up = dense(features, hidden, ("embed", "mlp"), use_bias=False, rngs=rngs)
        self.down = dense(hidden, features, ("mlp", "embed"), use_bias=False, rngs=rngs)
        self.polynorm = PolyNorm() if gate == "polynorm" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        g, u = project_together(x, (self.gate, self.up))  # [..., mlp] each
        act = nnx.silu(g) if self.polynorm is None else self.polynorm(g)
        return self.down(act * u)  # [..., e]
