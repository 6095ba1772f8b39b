"""Several linear projections of one input as a single GEMM.

On CPU one wide GEMM runs markedly faster than several narrow ones over the same input
(the language model's ``[8192, 128] x [128, 128]`` at about 0.6x the rate of
``x [128, 256]``, benchmarks/README.md), so q/k/v, or an MLP's gate and up projections,
are computed from their kernels concatenated along the output axis. The params stay
separate (checkpoints, sharding and Muon's per-matrix updates are unchanged).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers.linear import matmul

__all__ = ["project_together"]


def project_together(x: jax.Array, layers, dtype=None) -> list[jax.Array]:
    """``[layer(x) for layer in layers]`` for linear layers (``nnx.Linear`` /
    ``nnx.LinearGeneral`` over the last axis: kernel ``[e, *out_i]``, optional bias
    ``[*out_i]``) of ``x [..., e]``, in ``dtype`` (default: the promoted input and kernel
    dtype, as the layers compute) -> ``[..., *out_i]`` each."""
    e = x.shape[-1]
    kernels = [m.kernel[...] for m in layers]
    if dtype is None:
        dtype = jnp.result_type(x, *kernels)
    flat = jnp.concatenate([k.reshape(e, -1) for k in kernels], axis=1).astype(dtype)
    y = matmul(x.astype(dtype), flat)  # [..., sum of the outputs]
    biases = [m.bias for m in layers]
    if all(b is not None for b in biases):
        y = y + jnp.concatenate([b[...].reshape(-1) for b in biases]).astype(dtype)
    elif any(b is not None for b in biases):
        raise ValueError("project_together needs all layers with a bias or none")
    splits = np.cumsum([k.size // e for k in kernels])[:-1]
    parts = jnp.split(y, splits, axis=-1)
    return [p.reshape(*x.shape[:-1], *k.shape[1:]) for p, k in zip(parts, kernels, strict=True)]
