"""Normalisation layers whose params carry logical axis names."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm_fn(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """LayerNorm over the last axis: `(x - mean) * rsqrt(var + eps) * scale + bias`.

    x `[..., n]` float32, scale/bias `[n]`. The forward is `nnx.LayerNorm`'s arithmetic, op
    for op (variance `E[x^2] - E[x]^2` clipped at 0). The backward is the closed form
    `dx = rstd (gs - mean(gs) - xhat mean(gs xhat))` with `gs = g scale`, `xhat` the
    normalised x: two row means and two column sums, where autodiff through the two
    statistics costs several more passes over `x` (benchmarks/README.md).
    """
    return _layer_norm_fwd(x, scale, bias, eps)[0]


def _layer_norm_fwd(x, scale, bias, eps):
    mean = x.mean(-1, keepdims=True)  # [..., 1]
    var = jnp.maximum(0.0, jax.lax.square(x).mean(-1, keepdims=True) - jax.lax.square(mean))
    rstd = jax.lax.rsqrt(var + eps)  # [..., 1]
    y = (x - mean) * (rstd * scale) + bias
    return y, (x, mean, rstd, scale)


def _layer_norm_bwd(eps, residuals, g):
    x, mean, rstd, scale = residuals
    xhat = (x - mean) * rstd
    gs = g * scale
    dx = rstd * (gs - gs.mean(-1, keepdims=True) - xhat * (gs * xhat).mean(-1, keepdims=True))
    rows = tuple(range(g.ndim - 1))
    return dx, (g * xhat).sum(rows), g.sum(rows)


layer_norm_fn.defvjp(_layer_norm_fwd, _layer_norm_bwd)


def _in_float32(norm: nnx.Module, fn, x: jax.Array, *params: nnx.Param) -> jax.Array:
    """`fn(x, *params, norm.epsilon)` computed in (at least) float32, returned in the norm's
    dtype (default: x's), as flax's norms compute."""
    dtype = norm.dtype or x.dtype
    f32 = jnp.promote_types(dtype, jnp.float32)
    return fn(x.astype(f32), *(p[...].astype(f32) for p in params), norm.epsilon).astype(dtype)


class LayerNorm(nnx.LayerNorm):
    """`nnx.LayerNorm` over the last axis (same params, same forward values) computed by
    :func:`layer_norm_fn`, whose gradient is cheaper."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return _in_float32(self, layer_norm_fn, x, self.scale, self.bias)


def layer_norm(features: int, *, eps: float = 1e-6, dtype=jnp.float32, rngs: nnx.Rngs) -> LayerNorm:
    """LayerNorm over the last axis; scale/bias partitioned along `"embed"`."""
    return LayerNorm(
        features,
        epsilon=eps,
        dtype=dtype,
        scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def rms_norm_fn(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    """RMSNorm over the last axis: `x * rsqrt(mean(x^2) + eps) * scale`.

    x `[..., n]` float32, scale `[n]`. The forward is `nnx.RMSNorm`'s arithmetic, op for op.
    The backward is the closed form `dx = r (gs - xhat mean(gs xhat))` with `r` the rsqrt,
    `gs = g scale`, `xhat = x r`: autodiff also materialises `scale` broadcast to the
    shape of `x` (benchmarks/README.md).
    """
    return _rms_norm_fwd(x, scale, eps)[0]


def _rms_norm_fwd(x, scale, eps):
    r = jax.lax.rsqrt(jax.lax.square(x).mean(-1, keepdims=True) + eps)  # [..., 1]
    return x * (r * scale), (x, r, scale)


def _rms_norm_bwd(eps, residuals, g):
    x, r, scale = residuals
    xhat = x * r
    gs = g * scale
    dx = r * (gs - xhat * (gs * xhat).mean(-1, keepdims=True))
    return dx, (g * xhat).sum(tuple(range(g.ndim - 1)))


rms_norm_fn.defvjp(_rms_norm_fwd, _rms_norm_bwd)


class RMSNorm(nnx.RMSNorm):
    """`nnx.RMSNorm` over the last axis (same params, same forward values) computed by
    :func:`rms_norm_fn`, whose gradient is cheaper."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return _in_float32(self, rms_norm_fn, x, self.scale)


def rms_norm(features: int, *, eps: float = 1e-6, dtype=jnp.float32, rngs: nnx.Rngs) -> RMSNorm:
    """RMSNorm over the last axis; scale partitioned along `"embed"`."""
    return RMSNorm(
        features,
        epsilon=eps,
        dtype=dtype,
        scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
        rngs=rngs,
    )
