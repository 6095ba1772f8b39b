"""Vision Transformer (Dosovitskiy et al., 2021), following big_vision's `vit.py`.

Pre-norm encoder blocks (LayerNorm eps 1e-6, GELU MLP, xavier-uniform kernels, MLP biases
~N(0, 1e-6)), position embeddings added to the patch tokens only (big_vision; the original
google-research ViT also adds one to the class token), a zero-initialised head.
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.dropout import Dropout
from attnzoo.layers.mlp import Mlp, dense
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.norms import layer_norm
from attnzoo.layers.patch_embed import PatchEmbed
from attnzoo.layers.posemb import sincos_2d
from attnzoo.layers.token_select import SelectAndPack
from attnzoo.zoo.registry import register

PRESETS = {  # width, depth, heads, mlp_dim
    "tiny": dict(width=192, depth=12, num_heads=3, mlp_dim=768),
    "small": dict(width=384, depth=12, num_heads=6, mlp_dim=1536),
    "base": dict(width=768, depth=12, num_heads=12, mlp_dim=3072),
}


class EncoderBlock(nnx.Module):
    """`x + attn(ln(x))`, then `x + mlp(ln(x))`; x `[b, n, width]`."""

    def __init__(
        self,
        width: int,
        num_heads: int,
        mlp_dim: int,
        *,
        dropout: float,
        mlp_activation: str = "gelu",
        attention_impl: str,
        record_weights: bool,
        dtype,
        rngs: nnx.Rngs,
    ):
        self.norm1 = layer_norm(width, dtype=dtype, rngs=rngs)
        self.attn = MultiHeadAttention(
            width,
            num_heads,
            impl=attention_impl,
            record_weights=record_weights,
            dtype=dtype,
            rngs=rngs,
        )
        self.norm2 = layer_norm(width, dtype=dtype, rngs=rngs)
        self.mlp = Mlp(
            width, mlp_dim, activation=mlp_activation, dropout=dropout, dtype=dtype, rngs=rngs
        )
        self.dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, *, mask=None, rngs: nnx.Rngs | None = None) -> jax.Array:
        """`mask`: attention mask over the tokens; `rngs`: the step's streams (dropout)."""
        x = x + self.dropout(self.attn(self.norm1(x), mask=mask), rngs=rngs)
        return x + self.dropout(self.mlp(self.norm2(x), rngs=rngs), rngs=rngs)


class ViT(nnx.Module):
    """Images `[b, H, W, C]` -> logits `[b, num_classes]` (or pooled features if 0 classes)."""

    def __init__(
        self,
        *,
        num_classes: int,
        image_size: tuple[int, int] = (224, 224),
        in_channels: int = 3,
        patch_size: int = 16,
        width: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_dim: int = 768,
        mlp_activation: str = "gelu",
        pool: str = "tok",
        posemb: str = "learn",
        dropout: float = 0.0,
        attention_impl: str = "auto",
        record_weights: bool = False,
        spa_blocks: tuple[int, ...] = (),
        spa_container_len: int = 0,
        spa_capacity: float = 1.0,
        spa_tau: float = 1.0,
        spa_record: bool = True,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        """`spa_*`: Select-and-Pack on blocks `spa_blocks` (0-based) with containers of
        `spa_container_len` tokens (default: two images' tokens), `spa_capacity`, `spa_tau`,
        `spa_record` (see `SelectAndPack`). `mlp_activation`: big_vision's tanh "gelu" or
        timm's "gelu_exact"."""
        if pool not in ("tok", "gap"):
            raise ValueError(f"unknown pool {pool!r}; choose 'tok' (class token) or 'gap' (mean)")
        if posemb not in ("learn", "sincos2d"):
            raise ValueError(f"unknown posemb {posemb!r}; choose 'learn' or 'sincos2d'")
        for name, value in dict(
            width=width, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim, patch_size=patch_size
        ).items():
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout={dropout} must be in [0, 1)")
        if image_size[0] % patch_size or image_size[1] % patch_size:
            raise ValueError(
                f"patch_size={patch_size} does not divide image_size={tuple(image_size)}"
            )
        grid = (image_size[0] // patch_size, image_size[1] // patch_size)
        self.pool, self.grid = pool, grid
        self.stem = PatchEmbed(in_channels, width, patch_size, dtype=dtype, rngs=rngs)
        if posemb == "learn":
            init = nnx.initializers.normal(stddev=width**-0.5)
            self.posemb = nnx.Param(
                init(rngs.params(), (grid[0] * grid[1], width)), out_sharding=(None, "embed")
            )
        else:
            self.posemb = nnx.Variable(sincos_2d(*grid, width))  # fixed, not trained
        if pool == "tok":
            self.cls = nnx.Param(jnp.zeros((1, 1, width)), out_sharding=(None, None, "embed"))
        self.dropout = Dropout(dropout, rngs=rngs)
        block = functools.partial(
            EncoderBlock,
            width,
            num_heads,
            mlp_dim,
            dropout=dropout,
            mlp_activation=mlp_activation,
            attention_impl=attention_impl,
            record_weights=record_weights,
            dtype=dtype,
            rngs=rngs,
        )
        if spa_blocks and pool == "tok":
            raise ValueError("Select-and-Pack needs pool='gap' (it could drop the class token)")
        if any(not 0 <= i < depth for i in spa_blocks):
            raise ValueError(f"spa_blocks {tuple(spa_blocks)} must index blocks 0..{depth - 1}")
        spa = functools.partial(
            SelectAndPack,
            width=width,
            container_len=spa_container_len or 2 * grid[0] * grid[1],
            capacity=spa_capacity,
            tau=spa_tau,
            record=spa_record,
            dtype=dtype,
            rngs=rngs,
        )
        self.blocks = nnx.List([spa(block()) if i in spa_blocks else block() for i in range(depth)])
        self.norm = layer_norm(width, dtype=dtype, rngs=rngs)
        self.head = nnx.data(None)
        if num_classes:
            zeros = nnx.initializers.zeros_init()
            self.head = dense(
                width, num_classes, ("embed", "classes"), kernel_init=zeros, dtype=dtype, rngs=rngs
            )

    def tokens(self, images: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Normalised tokens `[b, (1 +) gh * gw, width]` (the class token first with
        pool="tok"); `rngs`: the step's random streams (dropout, Gumbel selection),
        default the layers' own."""
        x = self.stem(images)  # [b, gh, gw, width]
        b, gh, gw, width = x.shape
        x = x.reshape(b, gh * gw, width) + self.posemb[...]  # [b, n, width]
        if self.pool == "tok":
            x = jnp.concatenate([jnp.broadcast_to(self.cls[...], (b, 1, width)), x], axis=1)
        x = self.dropout(x, rngs=rngs)
        for block in self.blocks:
            x = block(x, rngs=rngs)
        return self.norm(x)

    def features(self, images: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """Pooled, normalised representation `[b, width]` (see `tokens`)."""
        x = self.tokens(images, rngs=rngs)
        return x[:, 0] if self.pool == "tok" else x.mean(axis=1)

    def __call__(self, images: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        x = self.features(images, rngs=rngs)
        return self.head(x) if self.head is not None else x


def _preset(size: str):
    def build(*, rngs: nnx.Rngs, **kwargs) -> ViT:
        return ViT(**{**PRESETS[size], **kwargs}, rngs=rngs)

    build.__doc__ = f"ViT-{size}: {PRESETS[size]}; other kwargs go to `ViT`."
    return build


for _size in PRESETS:
    register(f"vit_{_size}", classifier=r"^head/", posemb={r"^posemb$": "2d"})(_preset(_size))
