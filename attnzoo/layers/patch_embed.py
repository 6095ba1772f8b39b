"""Image to patch tokens."""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.linear import Linear


class PatchEmbed(nnx.Module):
    """Non-overlapping `p x p` patches linearly projected: `[b, H, W, C] -> [b, H/p, W/p, embed]`.

    Implemented as a reshape + matmul (identical to a stride-`p` convolution with a `p x p`
    kernel, but one large GEMM, which is faster on CPU).
    """

    def __init__(
        self,
        in_channels: int,
        features: int,
        patch_size: int,
        *,
        kernel_init: nnx.Initializer = nnx.initializers.lecun_normal(),
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.patch_size = patch_size
        fan_in = patch_size * patch_size * in_channels
        self.proj = Linear(
            fan_in,
            features,
            dtype=dtype,
            kernel_init=nnx.with_partitioning(kernel_init, ("patch", "embed")),
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
            rngs=rngs,
        )

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.proj(patchify(images, self.patch_size))  # [b, gh, gw, embed]


def patchify(images: jax.Array, p: int) -> jax.Array:
    """`[b, H, W, C]` -> `[b, H/p, W/p, p*p*C]`, each patch's pixels ordered (row, col, C)."""
    b, h, w, c = images.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by patch size {p}")
    x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // p, w // p, p * p * c)
