"""Decoder-only language model: token embedding → pre-norm blocks → RMSNorm → logits.

Block: `x += Attention(RMSNorm(x)); x += MLP(RMSNorm(x))` (LLaMA / Motif-2 layout), RoPE
inside the attention, GQA by `num_kv_heads`. The attention kind is chosen per layer by
name from `attnzoo.layers.attention_kinds` (dense, diff, gda, moba, moh, mta, ssa), the
MLP kind by name from `MLP_KINDS`. Embeddings tied (logits = x · E^T) or untied.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.attention_kinds import attention_kind
from attnzoo.layers.gated_mlp import GatedMlp
from attnzoo.layers.mlp import Mlp, dense
from attnzoo.layers.norms import rms_norm

__all__ = ["MLP_KINDS", "LanguageModel"]


def _gelu_mlp(width: int, hidden: int, *, rngs: nnx.Rngs) -> nnx.Module:
    return Mlp(width, hidden, activation="gelu", rngs=rngs)


def _gated_mlp(gate: str):
    return lambda width, hidden, *, rngs: GatedMlp(width, hidden, gate=gate, rngs=rngs)


# name -> constructor(width, hidden, *, rngs) of a `[..., width] -> [..., width]` MLP.
MLP_KINDS = {"gelu": _gelu_mlp, "swiglu": _gated_mlp("swiglu"), "polynorm": _gated_mlp("polynorm")}


def mlp_kind(name: str):
    if name not in MLP_KINDS:
        raise ValueError(f"unknown mlp kind {name!r}; choose one of {', '.join(MLP_KINDS)}")
    return MLP_KINDS[name]


class DecoderBlock(nnx.Module):
    """Pre-norm residual block `[b, t, width] -> [b, t, width]`."""

    def __init__(self, width, mlp_dim, *, attention: str, mlp: str, attention_kwargs, rngs):
        self.attention_norm = rms_norm(width, rngs=rngs)
        self.attention = attention_kind(attention)(width, rngs=rngs, **attention_kwargs)
        self.mlp_norm = rms_norm(width, rngs=rngs)
        self.mlp = mlp_kind(mlp)(width, mlp_dim, rngs=rngs)

    def __call__(self, x, *, positions=None, decode=False, rng=None):
        x = x + self.attention(self.attention_norm(x), positions=positions, decode=decode, rng=rng)
        return x + self.mlp(self.mlp_norm(x))


class LanguageModel(nnx.Module):
    """Causal LM `tokens [b, t] int -> logits [b, t, vocab_size] float32`.

    Args:
      vocab_size: tokens (256 for bytes).
      width, depth, num_heads: model size; `num_kv_heads` (GQA, default `num_heads`),
        `head_dim` (default `width // num_heads`), `mlp_dim` (default `4 * width`).
      attention: one kind for every layer, or a tuple of `depth` kinds (one per layer).
      attention_options: `{kind: {option: value}}` passed to layers of that kind.
      mlp: "gelu" (`fc2(gelu(fc1 x))`), "swiglu" or "polynorm" (gated: `down(act(gate x) ⊙
        up x)`, Motif-2's PolyNorm gate).
      window: sliding-window length (keys `i - window < j <= i`), None = full causal.
      rope_base: RoPE base. max_length: the context length the model is trained at.
      tie_embeddings: logits use the embedding matrix (no separate head).
      impl: `attend` implementation.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        width: int,
        depth: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        mlp_dim: int | None = None,
        attention: str | tuple[str, ...] = "dense",
        attention_options: dict | None = None,
        mlp: str = "gelu",
        window: int | None = None,
        rope_base: float = 10000.0,
        max_length: int = 256,
        tie_embeddings: bool = True,
        impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        kinds = (attention,) * depth if isinstance(attention, str) else tuple(attention)
        if len(kinds) != depth:
            raise ValueError(f"attention lists {len(kinds)} kinds for depth={depth} layers")
        options = dict(attention_options or {})
        unknown = sorted(set(options) - set(kinds))
        if unknown:
            raise ValueError(f"attention_options for kinds not in the model: {unknown}")
        self.vocab_size, self.max_length, self.tie_embeddings = (
            vocab_size,
            max_length,
            tie_embeddings,
        )
        self.kinds = kinds
        self.embed = nnx.Embed(
            vocab_size,
            width,
            embedding_init=nnx.with_partitioning(nnx.initializers.normal(0.02), ("vocab", "embed")),
            rngs=rngs,
        )
        self.blocks = nnx.List(
            [
                DecoderBlock(
                    width,
                    mlp_dim or 4 * width,
                    attention=kind,
                    mlp=mlp,
                    attention_kwargs=dict(
                        num_heads=num_heads,
                        num_kv_heads=num_kv_heads,
                        head_dim=head_dim,
                        layer_index=i,
                        window=window,
                        rope_base=rope_base,
                        impl=impl,
                        **options.get(kind, {}),
                    ),
                    rngs=rngs,
                )
                for i, kind in enumerate(kinds)
            ]
        )
        self.final_norm = rms_norm(width, rngs=rngs)
        self.head = (
            None
            if tie_embeddings
            else dense(width, vocab_size, ("embed", "vocab"), use_bias=False, rngs=rngs)
        )

    def init_cache(self, batch_size: int, max_length: int) -> None:
        """KV caches of every layer for decoding up to `max_length` tokens."""
        for block in self.blocks:
            block.attention.init_cache(batch_size, max_length)

    def __call__(
        self,
        tokens: jax.Array,
        *,
        positions: jax.Array | None = None,
        decode: bool = False,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """`tokens [b, t]` -> logits `[b, t, vocab]`; `decode`: append to the KV caches.
        `rng`: the step's key for stochastic attention kinds (one key per layer)."""
        x = self.embed(tokens)  # [b, t, width]
        for i, block in enumerate(self.blocks):
            layer_rng = None if rng is None else jax.random.fold_in(rng, i)
            x = block(x, positions=positions, decode=decode, rng=layer_rng)
        x = self.final_norm(x)
        if self.head is None:
            return self.embed.attend(x).astype(jnp.float32)  # [b, t, vocab]
        return self.head(x).astype(jnp.float32)
