"""DiT: Scalable Diffusion Models with Transformers (Peebles & Xie, 2023).

Follows facebookresearch/DiT `models.py`: patchify (p x p, stride p) + the frozen 2-D sin-cos
position table (channels [0:D/2] encode the column, [D/2:D] the row, each [sin, cos]);
timestep -> 256-d [cos, sin] frequency embedding -> Linear-SiLU-Linear; label table with one
extra null row (only when `class_dropout_prob > 0`, as in the code) and label dropout;
`c = t_emb + y_emb`; adaLN-Zero blocks (`Linear(D, 6D)(SiLU(c))` -> shift/scale/gate for
attention then MLP, LayerNorm without affine, eps 1e-6, GELU-tanh MLP ratio 4); final
adaLN layer; unpatchify with per-token features ordered (p_h, p_w, c). Initialisation as in
`initialize_weights`: xavier-uniform linears (the fused qkv matrix's fan-out is 3D), zero
biases, N(0, 0.02) timestep MLP and label table, zero adaLN and final linear.

Images are NHWC here (`[b, H, W, C]`), not the code's NCHW; the computation is the same.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers.activations import gelu_tanh
from attnzoo.layers.masks import Mask
from attnzoo.layers.mlp import dense
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.patch_embed import PatchEmbed
from attnzoo.layers.posemb import sincos_2d, timestep_embedding
from attnzoo.zoo.registry import register

PRESETS = {  # depth, hidden_size, num_heads (patch size 2)
    "s2": dict(depth=12, hidden_size=384, num_heads=6),
    "b2": dict(depth=12, hidden_size=768, num_heads=12),
    "l2": dict(depth=24, hidden_size=1024, num_heads=16),
    "xl2": dict(depth=28, hidden_size=1152, num_heads=16),
    "tiny": dict(depth=2, hidden_size=64, num_heads=4),
}
FREQUENCY_DIM = 256
_zeros = nnx.initializers.zeros_init()
_std002 = nnx.initializers.normal(0.02)


def _xavier(fan_in: int, fan_out: int) -> nnx.Initializer:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


def _attention_init(width: int) -> nnx.Initializer:
    """xavier-uniform of the official fused `qkv` `[D, 3D]` for q/k/v kernels `[D, h, d]`,
    of the `[D, D]` projection for the output kernel `[h, d, D]`."""

    def init(key, shape, dtype=jnp.float32):
        fan_out = 3 * width if shape[0] == width else width
        return _xavier(width, fan_out)(key, shape, dtype)

    return init


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """`x * (1 + scale) + shift`; x `[b, n, D]`, shift/scale `[b, 1|n, D]`."""
    return x * (1 + scale) + shift


def _plain_norm(width: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(width, epsilon=1e-6, use_bias=False, use_scale=False, rngs=rngs)


def _ada_ln(width: int, chunks: int, dtype, rngs: nnx.Rngs) -> nnx.Linear:
    """The zero-initialised `Linear(D, chunks * D)` applied to `SiLU(c)`."""
    return dense(width, chunks * width, ("embed", None), kernel_init=_zeros, dtype=dtype, rngs=rngs)


def ada_chunks(ada: nnx.Linear, c: jax.Array, n: int) -> list[jax.Array]:
    """`n` modulation tensors `[b, 1|t, D]` from `c` `[b, D]` or per token `[b, t, D]`."""
    out = ada(nnx.silu(c))
    out = out[:, None] if out.ndim == 2 else out
    return jnp.split(out, n, axis=-1)


class TimestepEmbedder(nnx.Module):
    """`t` `[b]` -> `[b, D]`: 256-d [cos, sin] frequencies -> Linear-SiLU-Linear."""

    def __init__(self, width: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.fc1 = dense(
            FREQUENCY_DIM, width, (None, "embed"), kernel_init=_std002, dtype=dtype, rngs=rngs
        )
        self.fc2 = dense(width, width, ("embed", None), kernel_init=_std002, dtype=dtype, rngs=rngs)

    def __call__(self, t: jax.Array) -> jax.Array:
        return self.fc2(nnx.silu(self.fc1(timestep_embedding(t, FREQUENCY_DIM))))


class LabelEmbedder(nnx.Module):
    """Labels `[b]` -> `[b, D]`; label `num_classes` is the null class (classifier-free
    guidance), present when `dropout_prob > 0`. With `rng`, each label is replaced by the
    null class with probability `dropout_prob` (training)."""

    def __init__(self, num_classes: int, width: int, dropout_prob: float, *, rngs: nnx.Rngs):
        self.num_classes, self.dropout_prob = num_classes, dropout_prob
        rows = num_classes + int(dropout_prob > 0)
        self.table = nnx.Param(_std002(rngs.params(), (rows, width)), out_sharding=(None, "embed"))

    def __call__(self, labels: jax.Array, *, rng: jax.Array | None = None) -> jax.Array:
        if rng is not None and self.dropout_prob > 0:
            drop = jax.random.uniform(rng, labels.shape) < self.dropout_prob
            labels = jnp.where(drop, self.num_classes, labels)
        return self.table[...][labels]


class DiTBlock(nnx.Module):
    """adaLN-Zero block: `x + gate_msa * attn(modulate(norm(x)))`, then the same for the MLP;
    the six modulations in the official chunk order (shift, scale, gate) x (msa, mlp)."""

    def __init__(
        self, width: int, num_heads: int, mlp_ratio: float, *, attention_impl: str, dtype, rngs
    ):
        hidden = int(width * mlp_ratio)
        self.norm1, self.norm2 = _plain_norm(width, rngs), _plain_norm(width, rngs)
        self.attn = MultiHeadAttention(
            width,
            num_heads,
            impl=attention_impl,
            kernel_init=_attention_init(width),
            dtype=dtype,
            rngs=rngs,
        )
        self.fc1 = dense(width, hidden, ("embed", "mlp"), dtype=dtype, rngs=rngs)
        self.fc2 = dense(hidden, width, ("mlp", "embed"), dtype=dtype, rngs=rngs)
        self.ada_ln = _ada_ln(width, 6, dtype, rngs)

    def __call__(self, x: jax.Array, c: jax.Array, *, mask: Mask | None = None) -> jax.Array:
        """x `[b, t, D]`, c `[b, D]` or per token `[b, t, D]`, mask over `[t, t]`."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = ada_chunks(
            self.ada_ln, c, 6
        )
        h = modulate(self.norm1(x), shift_msa, scale_msa)
        x = x + gate_msa * self.attn(h, mask=mask)
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        return x + gate_mlp * self.fc2(gelu_tanh(self.fc1(h)))


class FinalLayer(nnx.Module):
    """`Linear(modulate(norm(x), shift, scale))` -> `[b, t, p*p*out_channels]` (zero init)."""

    def __init__(self, width: int, patch_size: int, out_channels: int, *, dtype, rngs):
        self.norm = _plain_norm(width, rngs)
        out = patch_size * patch_size * out_channels
        self.linear = dense(width, out, ("embed", None), kernel_init=_zeros, dtype=dtype, rngs=rngs)
        self.ada_ln = _ada_ln(width, 2, dtype, rngs)

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        shift, scale = ada_chunks(self.ada_ln, c, 2)
        return self.linear(modulate(self.norm(x), shift, scale))


def unpatchify(x: jax.Array, grid: tuple[int, int], patch_size: int) -> jax.Array:
    """Tokens `[b, gh*gw, p*p*c]` (features ordered p_h, p_w, c) -> images `[b, H, W, c]`."""
    b, (gh, gw), p = x.shape[0], grid, patch_size
    c = x.shape[-1] // (p * p)
    x = x.reshape(b, gh, gw, p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, gh * p, gw * p, c)


class DiT(nnx.Module):
    """Noisy images `[b, H, W, C]`, timesteps `[b]`, labels `[b]` -> `[b, H, W, C_out]`
    (`C_out = 2C` with `learn_sigma`: the noise prediction, then the variance interpolation).

    `num_classes=0` is an unconditional model (`y` must be None). Inputs at another size
    than `input_size` get the sin-cos table of their own grid.
    """

    def __init__(
        self,
        *,
        input_size: int = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        num_classes: int = 1000,
        learn_sigma: bool = True,
        attention_impl: str = "auto",
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        for name, value in dict(
            input_size=input_size, patch_size=patch_size, hidden_size=hidden_size, depth=depth
        ).items():
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        if input_size % patch_size:
            raise ValueError(
                f"input_size={input_size} is not a multiple of patch_size={patch_size}"
            )
        if hidden_size % 4:
            raise ValueError(f"hidden_size={hidden_size} must be divisible by 4 (2-D sin-cos)")
        if not 0 <= class_dropout_prob < 1:
            raise ValueError(f"class_dropout_prob={class_dropout_prob} must be in [0, 1)")
        self.patch_size, self.in_channels, self.num_classes = patch_size, in_channels, num_classes
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.learn_sigma = learn_sigma
        fan_in = patch_size * patch_size * in_channels
        self.x_embedder = PatchEmbed(
            in_channels,
            hidden_size,
            patch_size,
            kernel_init=_xavier(fan_in, hidden_size),
            dtype=dtype,
            rngs=rngs,
        )
        grid = input_size // patch_size
        self.pos_embed = nnx.Variable(jnp.asarray(sincos_2d(grid, grid, hidden_size)))  # frozen
        self.t_embedder = TimestepEmbedder(hidden_size, dtype=dtype, rngs=rngs)
        self.y_embedder = nnx.data(None)
        if num_classes:
            self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob, rngs=rngs)
        block = functools.partial(
            self.make_block,
            hidden_size,
            num_heads,
            mlp_ratio,
            attention_impl=attention_impl,
            dtype=dtype,
        )
        self.blocks = nnx.List([block(rngs=rngs) for _ in range(depth)])
        self.final_layer = FinalLayer(
            hidden_size, patch_size, self.out_channels, dtype=dtype, rngs=rngs
        )

    def make_block(self, *args, **kwargs) -> DiTBlock:
        """One transformer block (subclasses adapt it)."""
        return DiTBlock(*args, **kwargs)

    @property
    def null_class(self) -> int:
        """The label of the unconditional branch (classifier-free guidance)."""
        if not self.num_classes or self.y_embedder.dropout_prob == 0:
            raise ValueError("guidance needs a class-conditional model trained with label dropout")
        return self.num_classes

    def embed(self, x: jax.Array) -> tuple[jax.Array, tuple[int, int]]:
        """Patch tokens + position table: `[b, gh*gw, D]` and the grid `(gh, gw)`."""
        tokens = self.x_embedder(x)  # [b, gh, gw, D]
        b, gh, gw, d = tokens.shape
        table = self.pos_embed[...]
        if table.shape[0] != gh * gw or gh != gw:
            table = jnp.asarray(sincos_2d(gh, gw, d))
        return tokens.reshape(b, gh * gw, d) + table, (gh, gw)

    def condition(self, t: jax.Array, y: jax.Array | None, rng: jax.Array | None) -> jax.Array:
        """`c = t_emb + y_emb` `[b, D]`; `rng` drops labels (training)."""
        c = self.t_embedder(t)
        if (y is None) != (self.y_embedder is None):
            raise ValueError(
                "labels y are required by a class-conditional DiT and refused by an "
                f"unconditional one (num_classes={self.num_classes})"
            )
        return c if y is None else c + self.y_embedder(y, rng=rng)

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        y: jax.Array | None = None,
        *,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """x `[b, H, W, C]`, t `[b]` (float or int steps), y int `[b]` (`num_classes` = null);
        `rng`: label dropout (training only)."""
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got input shape {x.shape}")
        h, grid = self.embed(x)
        c = self.condition(t, y, rng)
        for block in self.blocks:
            h = block(h, c)
        return unpatchify(self.final_layer(h, c), grid, self.patch_size)


def num_params(model: nnx.Module) -> int:
    """Trainable parameters plus the frozen position table (the official count)."""
    shapes = [x.shape for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
    return int(sum(np.prod(s) for s in [*shapes, model.pos_embed.shape]))


def _preset(size: str):
    def build(*, rngs: nnx.Rngs, **kwargs) -> DiT:
        return DiT(**{**PRESETS[size], **kwargs}, rngs=rngs)

    build.__doc__ = f"DiT-{size}: {PRESETS[size]}; other kwargs go to `DiT`."
    return build


for _size in PRESETS:
    register(f"dit_{_size}")(_preset(_size))
