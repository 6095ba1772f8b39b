"""Scale-DiT: hierarchical local attention for generation beyond the training resolution
(PeterYYZhang/Scale-DiT, commit becf4d6; there on FLUX, here on DiT).

One joint sequence `[high-res tokens | low-res tokens]`:
- high-res tokens attend within a sliding 2-D window (Chebyshev radius `radius` tokens)
  and to every low-res token; low-res tokens attend to low-res tokens only
  (:class:`LocalWithAnchors`: a `LocalWindow2D` plus global anchors, never a dense array);
- high-res tokens are kept in window-first order (`window` x `window` token windows), so
  the attention kernels skip the empty key blocks;
- scaled positional anchors: low-res positions are multiplied by HR/LR, so a low-res token
  sits on the high-res grid where its patch lies (the official code scales RoPE position
  ids; DiT's fixed sin-cos table takes the scaled coordinates);
- a LoRA bridge (rank `lora_rank`) on the patch embedding, the attention projections (qkv,
  out) and the MLP, active on the low-res tokens only, whose adaLN modulation comes from
  their own timestep `t_low` (0 = clean at inference).
Without `x_low` the model is a plain DiT (the first, low-res stage of the sampler).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.activations import gelu_tanh
from attnzoo.layers.anchor_mask import LocalWithAnchors
from attnzoo.layers.attention import attend
from attnzoo.layers.lora import LoRA
from attnzoo.layers.masks import LocalWindow2D
from attnzoo.layers.patch_embed import patchify
from attnzoo.layers.posemb import sincos_2d
from attnzoo.layers.token_order import from_window_first, to_window_first
from attnzoo.zoo.diffusion.dit import PRESETS, DiT, DiTBlock, ada_chunks, modulate, unpatchify
from attnzoo.zoo.registry import register


def _per_token(chunks_high, chunks_low, num_high: int, num_low: int) -> list[jax.Array]:
    """Modulations `[b, 1, D]` of each group -> `[b, num_high + num_low, D]`."""
    out = []
    for h, lo in zip(chunks_high, chunks_low, strict=True):
        b, _, d = h.shape
        out.append(
            jnp.concatenate(
                [jnp.broadcast_to(h, (b, num_high, d)), jnp.broadcast_to(lo, (b, num_low, d))], 1
            )
        )
    return out


class ScaleDiTBlock(DiTBlock):
    """A DiT block whose low-res tokens (the last `num_low`) get LoRA updates on qkv, out,
    fc1 and fc2 and their own adaLN modulation."""

    def __init__(self, width, num_heads, mlp_ratio, *, lora_rank, attention_impl, dtype, rngs):
        super().__init__(
            width, num_heads, mlp_ratio, attention_impl=attention_impl, dtype=dtype, rngs=rngs
        )
        hidden = int(width * mlp_ratio)
        self.lora_qkv = LoRA(width, 3 * width, lora_rank, rngs=rngs)
        self.lora_out = LoRA(width, width, lora_rank, rngs=rngs)
        self.lora_fc1 = LoRA(width, hidden, lora_rank, rngs=rngs)
        self.lora_fc2 = LoRA(hidden, width, lora_rank, rngs=rngs)

    def joint(self, x, c_high, c_low, num_low: int, mask) -> jax.Array:
        """x `[b, n_high + num_low, D]`; c_high / c_low `[b, D]`; mask over the joint tokens."""
        n = x.shape[1]
        mods = _per_token(
            ada_chunks(self.ada_ln, c_high, 6),
            ada_chunks(self.ada_ln, c_low, 6),
            n - num_low,
            num_low,
        )
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        low = slice(n - num_low, n)

        def lora_on_low(full, lora, inputs):
            return full.at[:, low].add(lora(inputs[:, low]))

        h = modulate(self.norm1(x), shift_msa, scale_msa)
        q, k, v = self.attn._project_qkv(h)  # [b, n, heads, d]
        b, _, heads, d = q.shape
        dq, dk, dv = jnp.split(self.lora_qkv(h[:, low]).reshape(b, num_low, 3, heads, d), 3, 2)
        q, k, v = (z.at[:, low].add(dz[:, :, 0]) for z, dz in ((q, dq), (k, dk), (v, dv)))
        o = attend(q, k, v, mask=mask, impl=self.attn.impl)  # [b, n, heads, d]
        attn_out = lora_on_low(self.attn.out(o), self.lora_out, o.reshape(b, n, heads * d))
        x = x + gate_msa * attn_out
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)
        hidden = gelu_tanh(lora_on_low(self.fc1(h), self.lora_fc1, h))
        return x + gate_mlp * lora_on_low(self.fc2(hidden), self.lora_fc2, hidden)


class ScaleDiT(DiT):
    """`DiT` plus the low-res pathway: `model(x, t, y, x_low=..., t_low=...)` denoises the
    high-res `x` `[b, H, W, C]` anchored on `x_low` `[b, H/f, W/f, C]` at timestep `t_low`."""

    def __init__(self, *, radius: int = 8, window: int = 4, lora_rank: int = 16, **kwargs):
        if radius < 0 or window < 1:
            raise ValueError(f"need radius >= 0 and window >= 1, got {radius}, {window}")
        self.radius, self.window, self.lora_rank = radius, window, lora_rank
        super().__init__(**kwargs)
        p, c, d = self.patch_size, self.in_channels, self.t_embedder.fc2.out_features
        self.lora_patch = LoRA(p * p * c, d, lora_rank, rngs=kwargs["rngs"])

    def make_block(self, *args, **kwargs) -> ScaleDiTBlock:
        return ScaleDiTBlock(*args, lora_rank=self.lora_rank, **kwargs)

    def mask(self, grid: tuple[int, int], num_low: int) -> LocalWithAnchors:
        """The joint mask for a high-res token grid and `num_low` low-res tokens."""
        w = self.window
        if grid[0] % w or grid[1] % w:
            raise ValueError(f"token grid {grid} is not a multiple of the window {w}x{w}")
        return LocalWithAnchors(LocalWindow2D(grid, self.radius, window=(w, w)), num_low)

    def __call__(self, x, t, y=None, *, x_low=None, t_low=None, rng=None):
        if x_low is None:
            return super().__call__(x, t, y, rng=rng)
        p = self.patch_size
        h, grid = self.embed(x)  # [b, n_high, D], row-major
        w = (self.window, self.window)
        if grid[0] % w[0] or grid[1] % w[1]:
            raise ValueError(f"token grid {grid} is not a multiple of the window {w}")
        h = to_window_first(h, grid, w)
        patches = patchify(x_low, p)  # [b, lh, lw, p*p*C]
        b, lh, lw, _ = patches.shape
        if grid[0] % lh or grid[0] * lw != grid[1] * lh:
            raise ValueError(f"low-res grid {(lh, lw)} does not divide the high-res grid {grid}")
        low = self.x_embedder.proj(patches) + self.lora_patch(patches)
        anchors = sincos_2d(lh, lw, low.shape[-1], scale=grid[0] / lh)  # on the high-res grid
        low = low.reshape(b, lh * lw, -1) + anchors
        c_high = self.condition(t, y, rng)
        c_low = self.condition(t_low, y, rng)
        mask = self.mask(grid, lh * lw)
        tokens = jnp.concatenate([h, low], axis=1)
        for block in self.blocks:
            tokens = block.joint(tokens, c_high, c_low, lh * lw, mask)
        high = from_window_first(tokens[:, : grid[0] * grid[1]], grid, w)
        return unpatchify(self.final_layer(high, c_high), grid, p)


@register("scale_dit_tiny")
def scale_dit_tiny(*, rngs: nnx.Rngs, **kwargs) -> ScaleDiT:
    """Scale-DiT on the `dit_tiny` backbone; other kwargs go to `ScaleDiT`."""
    return ScaleDiT(**{**PRESETS["tiny"], **kwargs}, rngs=rngs)
