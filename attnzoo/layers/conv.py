"""Convolutions on NHWC feature maps whose params carry logical axis names."""

import jax.numpy as jnp
from flax import nnx

_TORCH_DEFAULT = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def conv2d(
    in_features: int,
    out_features: int,
    kernel: int,
    *,
    stride: int = 1,
    groups: int = 1,
    use_bias: bool = True,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """``kernel x kernel`` conv, zero padding ``kernel // 2`` (PyTorch's ``padding=k//2``),
    ``[b, H, W, in] -> [b, ceil(H/stride), ceil(W/stride), out]``. Kernel init: PyTorch's
    default ``U(+-1/sqrt(fan_in))``; zero bias."""
    pad = kernel // 2
    return nnx.Conv(
        in_features,
        out_features,
        (kernel, kernel),
        strides=stride,
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=nnx.with_partitioning(_TORCH_DEFAULT, (None, None, None, "embed")),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


def depthwise_conv(features: int, kernel: int, *, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
    """Depthwise ``kernel x kernel`` conv with bias (one filter per channel), same size out."""
    return conv2d(features, features, kernel, groups=features, dtype=dtype, rngs=rngs)
