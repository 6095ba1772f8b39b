"""``nnx.Linear`` / ``nnx.LinearGeneral`` with a weight gradient laid out for XLA's CPU GEMMs.

Autodiff computes the kernel gradient of ``y = x @ w`` as ``x^T dy``. XLA's CPU backend
(YNNPACK) then makes a transposed copy of ``dy`` and fuses that copy into the loop that
produces ``dy`` (a norm's or an activation's backward): a strided loop over the whole
activation, several times slower than the GEMMs around it (GMAN's batch-normed FCs: 34 ms
for a 10 MB gradient; benchmarks/README.md). :func:`matmul` computes the same product as
``(dy^T x)^T``, for which XLA transposes ``x`` (a stored activation: a plain, tiled copy)
instead. Values are the same up to float rounding (another summation order).
:func:`project` applies a layer's params through it: ``Linear`` and the attention output
projections (``nnx.LinearGeneral`` over the head axes, as one GEMM).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["Linear", "matmul", "project", "weight_grad"]


@jax.custom_vjp
def matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x [..., k] @ kernel [k, n] -> [..., n]`` (``jnp.dot``), kernel gradient as
    ``(dy^T x)^T``."""
    return jnp.dot(x, kernel)


def _matmul_fwd(x, kernel):
    return jnp.dot(x, kernel), (x, kernel)


def weight_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
    """The kernel gradient ``x^T dy`` of ``x [..., k] @ w`` for ``dy [..., n]``, summed over
    the leading axes -> ``[k, n]``, computed as ``(dy^T x)^T`` (module docstring)."""
    rows = x.reshape(-1, x.shape[-1])  # [m, k]
    dyt = jax.lax.dot_general(dy.reshape(-1, dy.shape[-1]), rows, (((0,), (0,)), ((), ())))
    return dyt.T  # [k, n]


def _matmul_bwd(residuals, dy):
    x, kernel = residuals
    return jnp.dot(dy, kernel.T).astype(x.dtype), weight_grad(x, dy).astype(kernel.dtype)


matmul.defvjp(_matmul_fwd, _matmul_bwd)


def project(x: jax.Array, layer, dtype=None) -> jax.Array:
    """``layer(x)`` for an ``nnx.LinearGeneral`` over the last axes of ``x`` (kernel
    ``[*in, *out]``, optional bias ``[*out]``; an ``nnx.Linear`` too): ``x [..., *in] ->
    [..., *out]`` in ``dtype`` (default: the promoted input and kernel dtype)."""
    ins = layer.in_features if isinstance(layer.in_features, tuple) else (layer.in_features,)
    kernel = layer.kernel[...]
    outs = kernel.shape[len(ins) :]
    if dtype is None:
        dtype = jnp.result_type(x, kernel)
    lead = x.shape[: x.ndim - len(ins)]
    flat = kernel.reshape(int(np.prod(ins)), -1).astype(dtype)
    y = matmul(x.reshape(*lead, -1).astype(dtype), flat).reshape(*lead, *outs)
    return y if layer.bias is None else y + layer.bias[...].astype(dtype)


class Linear(nnx.Linear):
    """``nnx.Linear`` (same params and forward) whose product is :func:`matmul`."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return project(x, self, self.dtype)
