"""OAT-style scanpath decoder (HKUST-NISL/oat_eccv24): an encoder–decoder transformer
that points at the next fixated region or at the end of the scanpath.

Regions: the `g × g` patch cells of the zoo ViT (its tokens, with their position
embedding, are the region tokens: the grid stands in for OAT's object crops) plus a
learned end token. The decoder reads the earlier fixations as the tokens of their
regions behind a learned start token, with causal self-attention (`attend`, `Causal`)
and cross-attention to the regions; its output scores every region token and the end
token by a scaled dot product (OAT's cross-attention logits). Trained by cross-entropy
on the fixated regions then the end. Decoding: sampling or beam search, stopping at the
end token; every fixation lasts `fixation_ms` (OAT predicts no durations); a sampled
fixation lies uniformly inside its cell (the model's density over the image: a region's
probability spread over its area), a beam-searched one at its cell's centre.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.masks import Causal
from attnzoo.layers.mlp import Mlp, dense
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.norms import layer_norm
from attnzoo.zoo.registry import register
from attnzoo.zoo.vision.vit import ViT


class DecoderBlock(nnx.Module):
    """`x + self_attn(ln(x))` (causal), `x + cross_attn(ln(x), memory)`, `x + mlp(ln(x))`."""

    def __init__(self, width: int, num_heads: int, mlp_dim: int, *, impl: str, rngs):
        self.norm1, self.norm2, self.norm3 = (layer_norm(width, rngs=rngs) for _ in range(3))
        self.self_attn = MultiHeadAttention(width, num_heads, impl=impl, rngs=rngs)
        self.cross_attn = MultiHeadAttention(width, num_heads, impl=impl, rngs=rngs)
        self.mlp = Mlp(width, mlp_dim, dropout=0.0, rngs=rngs)

    def __call__(self, x: jax.Array, memory: jax.Array) -> jax.Array:
        """x `[b, t, width]`, memory `[b, s, width]` → `[b, t, width]`."""
        x = x + self.self_attn(self.norm1(x), mask=Causal())
        x = x + self.cross_attn(self.norm2(x), context=memory)
        return x + self.mlp(self.norm3(x))


class OAT(nnx.Module):
    """Images `[b, S, S, 3]`, fixations `[b, L, 3]` → logits `[b, L + 1, g² + 1]` of the
    region (or end, the last index) of fixation `t` given the fixations before it."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int = 16,
        width: int = 192,
        encoder_depth: int = 4,
        decoder_depth: int = 2,
        num_heads: int = 3,
        mlp_dim: int = 768,
        fixation_ms: float = 300.0,
        dropout: float = 0.0,
        attention_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        if decoder_depth < 1 or fixation_ms <= 0:
            raise ValueError(f"decoder_depth={decoder_depth} must be >= 1, fixation_ms > 0")
        self.encoder = ViT(
            num_classes=0,
            image_size=(image_size, image_size),
            patch_size=patch_size,
            width=width,
            depth=encoder_depth,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            pool="gap",
            dropout=dropout,
            attention_impl=attention_impl,
            rngs=rngs,
        )
        self.grid, self.fixation_ms = image_size // patch_size, fixation_ms
        init = nnx.initializers.normal(1.0)
        self.end = nnx.Param(init(rngs.params(), (1, 1, width)))
        self.start = nnx.Param(init(rngs.params(), (1, 1, width)))
        self.blocks = nnx.List(
            [
                DecoderBlock(width, num_heads, mlp_dim, impl=attention_impl, rngs=rngs)
                for _ in range(decoder_depth)
            ]
        )
        self.norm = layer_norm(width, rngs=rngs)
        self.query = dense(width, width, ("embed", None), rngs=rngs)

    @property
    def end_token(self) -> int:
        return self.grid * self.grid

    def regions(self, fixations: jax.Array) -> jax.Array:
        """`(x, y)` in [0, 1] → row-major cell of the `g × g` grid, int `[...]`."""
        cell = jnp.clip(jnp.floor(fixations[..., :2] * self.grid), 0, self.grid - 1)
        return (cell[..., 1] * self.grid + cell[..., 0]).astype(jnp.int32)

    def memory(self, images: jax.Array) -> jax.Array:
        """Region tokens and the end token `[b, g² + 1, width]`."""
        tokens = self.encoder.tokens(images)
        b, _, width = tokens.shape
        return jnp.concatenate([tokens, jnp.broadcast_to(self.end[...], (b, 1, width))], 1)

    def decode(self, memory: jax.Array, regions: jax.Array) -> jax.Array:
        """Logits `[b, t + 1, g² + 1]` after the start token and `regions [b, t]`."""
        b, _, width = memory.shape
        x = jnp.take_along_axis(memory, regions[..., None], axis=1)  # [b, t, width]
        x = jnp.concatenate([jnp.broadcast_to(self.start[...], (b, 1, width)), x], 1)
        for block in self.blocks:
            x = block(x, memory)
        return jnp.einsum("btd,bsd->bts", self.query(self.norm(x)), memory) * width**-0.5

    def __call__(self, images: jax.Array, fixations: jax.Array) -> jax.Array:
        return self.decode(self.memory(images), self.regions(fixations))

    def nll(self, images, fixations, valid) -> tuple[dict, jax.Array]:
        """Cross-entropy `{"nll": [b, L + 1]}` on the regions then the end token, and its
        weight `[b, L + 1]` (real fixations and the end)."""
        logits = self(images, fixations)
        n = valid.sum(-1, keepdims=True)
        positions = jnp.arange(logits.shape[1])
        targets = jnp.where(
            positions < n,
            jnp.pad(self.regions(fixations), ((0, 0), (0, 1))),
            self.end_token,
        )
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1)[..., 0]
        return {"nll": ce}, positions <= n

    def _to_fixations(self, regions: jax.Array, offsets: jax.Array | float = 0.5) -> jax.Array:
        """Regions `[b, L]` → `[b, L, 3]`, `fixation_ms` each, at `offsets` (in [0, 1),
        `[b, L, 2]` or a scalar; 0.5: the centre) inside their cells."""
        row, col = jnp.divmod(regions, self.grid)
        xy = (jnp.stack([col, row], -1) + offsets) / self.grid
        return jnp.concatenate([xy, jnp.full((*regions.shape, 1), self.fixation_ms)], -1)

    def sample(
        self, images, key: jax.Array, *, budget_ms: float, max_len: int, temperature: float = 1.0
    ):
        """Sampled scanpaths `([b, max_len, 3], valid [b, max_len])`: regions drawn one at a
        time from `softmax(logits / temperature)` until the end token (`budget_ms` unused:
        OAT stops at its end token), each fixation uniform inside its region."""
        del budget_ms
        memory = self.memory(images)
        b = images.shape[0]

        def step(t, carry):
            regions, ended, key = carry
            key, sub = jax.random.split(key)
            logits = self.decode(memory, regions)[:, t]  # position t reads regions < t
            # a scanpath has at least one fixation (every human one does)
            logits = jnp.where(
                (t == 0) & (jnp.arange(logits.shape[-1]) == self.end_token), -jnp.inf, logits
            )
            token = jax.random.categorical(sub, logits / temperature)
            # ended[:, t - 1] is ended[:, -1], still False, at t = 0.
            ended = ended.at[:, t].set(ended[:, t - 1] | (token == self.end_token))
            return regions.at[:, t].set(jnp.where(token == self.end_token, 0, token)), ended, key

        regions = jnp.zeros((b, max_len), jnp.int32)
        ended = jnp.zeros((b, max_len), bool)
        key, k_place = jax.random.split(key)
        regions, ended, _ = jax.lax.fori_loop(0, max_len, step, (regions, ended, key))
        offsets = jax.random.uniform(k_place, (b, max_len, 2))
        return self._to_fixations(regions, offsets), ~ended

    def beam_search(self, images, *, beam_size: int, max_len: int):
        """Most likely scanpaths by beam search (`beam_size` hypotheses, scores = summed
        log-probabilities, a hypothesis finishes at the end token or at `max_len`) →
        `([b, max_len, 3], valid [b, max_len])`."""
        memory = jnp.repeat(self.memory(images), beam_size, axis=0)  # [b*k, s, w]
        b, k, s = images.shape[0], beam_size, memory.shape[1]
        end = jnp.arange(s) == self.end_token

        def step(t, carry):
            regions, lengths, done, scores = carry
            logits = self.decode(memory, regions.reshape(b * k, max_len))[:, t]
            logp = jax.nn.log_softmax(logits).reshape(b, k, s)
            # Only the end may follow a full scanpath; a finished hypothesis continues
            # once, unchanged, at no cost.
            logp = jnp.where(t == max_len, jnp.where(end, 0.0, -jnp.inf), logp)
            logp = jnp.where((t == 0) & end, -jnp.inf, logp)  # at least one fixation
            logp = jnp.where(done[..., None], jnp.where(end, 0.0, -jnp.inf), logp)
            scores, flat = jax.lax.top_k((scores[..., None] + logp).reshape(b, k * s), k)
            parent, token = jnp.divmod(flat, s)
            regions, lengths, done = (
                jnp.take_along_axis(a, parent.reshape(b, k, *([1] * (a.ndim - 2))), 1)
                for a in (regions, lengths, done)
            )
            write = ~done & (token != self.end_token) & (t < max_len)
            column = jnp.minimum(t, max_len - 1)
            regions = regions.at[:, :, column].set(jnp.where(write, token, regions[:, :, column]))
            return regions, lengths + write, done | (token == self.end_token), scores

        carry = (
            jnp.zeros((b, k, max_len), jnp.int32),
            jnp.zeros((b, k), jnp.int32),
            jnp.zeros((b, k), bool),
            # Only the first hypothesis starts alive, so the k beams stay distinct.
            jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf)[None].repeat(b, 0),
        )
        regions, lengths, _, scores = jax.lax.fori_loop(0, max_len + 1, step, carry)
        best = jnp.argmax(scores, -1)
        regions = jnp.take_along_axis(regions, best[:, None, None], 1)[:, 0]
        length = jnp.take_along_axis(lengths, best[:, None], 1)
        return self._to_fixations(regions), jnp.arange(max_len) < length


@register("oat")
def oat(*, rngs: nnx.Rngs, **kwargs) -> OAT:
    """OAT-style region-pointer decoder over ViT region tokens; kwargs to `OAT`."""
    return OAT(rngs=rngs, **kwargs)
