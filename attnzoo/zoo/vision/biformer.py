"""BiFormer (Zhu et al., CVPR 2023), following the official `models/biformer.py`.

Conv stem (3x3 stride-2 conv, BN, GELU, 3x3 stride-2 conv, BN), then stages of blocks
separated by 3x3 stride-2 conv + BN downsampling; the final norm is BatchNorm (running
statistics), then the spatial mean and a linear head. Block (pre-norm):
``x += DWConv3x3(x); x += attn(LN(x)); x += MLP(LN(x))`` with LN eps 1e-6, MLP ratio 3,
exact GELU. ``attn`` is bi-level routing attention (`attnzoo.layers.routing`) for
``topk > 0`` and, for ``topk = -2`` (stage 4), full attention with 8 heads, no qkv bias and
a 5x5 depthwise-conv LePE of the block's normed input added before the output projection.

Init as the official `_init_weights`: linears N(0, 0.02) (timm's trunc-normal, whose +-2
cut-off is 100 sigma away) with zero bias, norms 1/0; conv kernels PyTorch's default
``U(+-1/sqrt(fan_in))`` (biases zero here, uniform there).
BatchNorm running statistics use momentum 0.1 (flax 0.9) and the biased batch variance
(PyTorch updates them with the unbiased one).

Presets: ``biformer_t/s/b`` are the official T/S/B (224x224 inputs, 7x7 regions at every
routed stage); ``biformer_tiny`` fits 28x28 inputs (stem stride 2 -> 14x14, 7x7 regions of
2x2 tokens, then 7x7 regions of single tokens, then full attention at 4x4).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.attention import attend
from attnzoo.layers.conv import conv2d, depthwise_conv
from attnzoo.layers.mlp import dense
from attnzoo.layers.norms import layer_norm
from attnzoo.layers.routing import BiLevelRoutingAttention
from attnzoo.zoo.registry import register

FULL_ATTENTION = -2  # official `topk=-2`: AttentionLePE

PRESETS = {
    "t": dict(depths=(2, 2, 8, 2), widths=(64, 128, 256, 512), topks=(1, 4, 16, -2)),
    "s": dict(depths=(4, 4, 18, 4), widths=(64, 128, 256, 512), topks=(1, 4, 16, -2)),
    "b": dict(depths=(4, 4, 18, 4), widths=(96, 192, 384, 768), topks=(1, 4, 16, -2)),
    "tiny": dict(depths=(2, 2, 2), widths=(64, 128, 256), topks=(4, 16, -2), stem_strides=(2, 1)),
}
# timm's trunc_normal_(std=.02) truncates at +-2 absolute (100 sigma): a plain normal.
_TRUNC_NORMAL = nnx.initializers.normal(stddev=0.02)


def _linear(i, o, axes, *, use_bias=True, dtype, rngs):
    return dense(i, o, axes, use_bias=use_bias, kernel_init=_TRUNC_NORMAL, dtype=dtype, rngs=rngs)


def _batch_norm(features: int, *, dtype, rngs) -> nnx.BatchNorm:
    axes = nnx.with_partitioning
    return nnx.BatchNorm(
        features,
        momentum=0.9,
        epsilon=1e-5,
        use_fast_variance=False,
        dtype=dtype,
        scale_init=axes(nnx.initializers.ones_init(), ("embed",)),
        bias_init=axes(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


class AttentionLePE(nnx.Module):
    """Full attention + LePE (official `AttentionLePE`), NHWC ``[b, H, W, dim]`` in and out."""

    def __init__(self, dim: int, *, num_heads: int = 8, side_dwconv: int = 5, impl, dtype, rngs):
        self.num_heads, self.impl = num_heads, impl
        self.qkv = _linear(dim, 3 * dim, ("embed", "mlp"), use_bias=False, dtype=dtype, rngs=rngs)
        self.proj = _linear(dim, dim, ("mlp", "embed"), dtype=dtype, rngs=rngs)
        self.lepe = depthwise_conv(dim, side_dwconv, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, c // self.num_heads)
        out = attend(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], impl=self.impl)  # [b, n, h, d]
        out = out.reshape(b, h, w, c) + self.lepe(x)  # LePE reads the normed input
        return self.proj(out)


class Block(nnx.Module):
    """``x += DWConv3x3(x); x += attn(LN(x)); x += MLP(LN(x))`` on ``[b, H, W, dim]``."""

    def __init__(
        self,
        dim: int,
        *,
        topk: int,
        head_dim: int,
        n_win: int,
        mlp_ratio: int,
        side_dwconv: int,
        impl: str,
        record_routing: bool,
        dtype,
        rngs: nnx.Rngs,
    ):
        self.pos_embed = depthwise_conv(dim, 3, dtype=dtype, rngs=rngs)
        self.norm1 = layer_norm(dim, eps=1e-6, dtype=dtype, rngs=rngs)
        if topk == FULL_ATTENTION:
            self.attn = AttentionLePE(
                dim, side_dwconv=side_dwconv, impl=impl, dtype=dtype, rngs=rngs
            )
        elif topk > 0:
            self.attn = BiLevelRoutingAttention(
                dim,
                dim // head_dim,
                n_win=n_win,
                topk=topk,
                side_dwconv=side_dwconv,
                impl=impl,
                record_routing=record_routing,
                dtype=dtype,
                rngs=rngs,
            )
        else:
            raise ValueError(f"BiFormer topk must be > 0 (routing) or -2 (full), got {topk}")
        self.norm2 = layer_norm(dim, eps=1e-6, dtype=dtype, rngs=rngs)
        hidden = mlp_ratio * dim
        self.fc1 = _linear(dim, hidden, ("embed", "mlp"), dtype=dtype, rngs=rngs)
        self.fc2 = _linear(hidden, dim, ("mlp", "embed"), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.pos_embed(x)
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(nnx.gelu(self.fc1(self.norm2(x)), approximate=False))


class Downsample(nnx.Module):
    """3x3 stride-s conv (padding 1) + BatchNorm, optionally GELU after."""

    def __init__(self, i: int, o: int, *, stride: int = 2, dtype, rngs):
        self.conv = conv2d(i, o, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.norm = _batch_norm(o, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(self.conv(x))


class BiFormer(nnx.Module):
    """Images ``[b, H, W, C]`` -> logits ``[b, num_classes]`` (pooled features if 0 classes).

    Args:
      depths, widths, topks: per stage (``topk = -2``: full attention with LePE).
      head_dim: routed stages use ``width // head_dim`` heads.
      n_win: regions per side at every routed stage (the map must be divisible by it).
      stem_strides: strides of the stem's two convs (official ``(2, 2)``).
      record_routing: routed layers sow their region indices (see `BiLevelRoutingAttention`).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        topks: tuple[int, ...],
        image_size: tuple[int, int] = (224, 224),
        in_channels: int = 3,
        head_dim: int = 32,
        n_win: int = 7,
        mlp_ratio: int = 3,
        side_dwconv: int = 5,
        stem_strides: tuple[int, int] = (2, 2),
        attention_impl: str = "auto",
        record_routing: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        del image_size  # any size whose routed stages divide into n_win x n_win regions
        if not len(depths) == len(widths) == len(topks):
            raise ValueError(f"depths {depths}, widths {widths}, topks {topks} differ in length")
        stem_mid = widths[0] // 2
        self.stem_conv = Downsample(
            in_channels, stem_mid, stride=stem_strides[0], dtype=dtype, rngs=rngs
        )
        self.stem_out = Downsample(
            stem_mid, widths[0], stride=stem_strides[1], dtype=dtype, rngs=rngs
        )
        self.downsample = nnx.List(
            [Downsample(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )
        block = dict(
            head_dim=head_dim,
            n_win=n_win,
            mlp_ratio=mlp_ratio,
            side_dwconv=side_dwconv,
            impl=attention_impl,
            record_routing=record_routing,
            dtype=dtype,
            rngs=rngs,
        )
        self.stages = nnx.List(
            [
                nnx.List([Block(w, topk=k, **block) for _ in range(d)])
                for d, w, k in zip(depths, widths, topks, strict=True)
            ]
        )
        self.norm = _batch_norm(widths[-1], dtype=dtype, rngs=rngs)
        self.head = nnx.data(None)
        if num_classes:
            self.head = _linear(
                widths[-1], num_classes, ("embed", "classes"), dtype=dtype, rngs=rngs
            )

    def features(self, images: jax.Array) -> jax.Array:
        """Pooled representation ``[b, widths[-1]]``."""
        x = self.stem_out(nnx.gelu(self.stem_conv(images), approximate=False))  # [b, H/4, W/4, c]
        for i, stage in enumerate(self.stages):
            if i:
                x = self.downsample[i - 1](x)  # [b, H/2, W/2, c']
            for blk in stage:
                x = blk(x)
        return self.norm(x).mean(axis=(1, 2))

    def __call__(self, images: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``rngs`` is accepted for the vision family's interface (BiFormer draws nothing)."""
        x = self.features(images)
        return self.head(x) if self.head is not None else x


def _preset(size: str):
    def build(*, rngs: nnx.Rngs, **kwargs) -> BiFormer:
        return BiFormer(**{**PRESETS[size], **kwargs}, rngs=rngs)

    build.__doc__ = f"BiFormer-{size}: {PRESETS[size]}; other kwargs go to `BiFormer`."
    return build


for _size in PRESETS:
    register(f"biformer_{_size}", classifier=r"^head/")(_preset(_size))
