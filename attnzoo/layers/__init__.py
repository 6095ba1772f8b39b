"""Shared NNX building blocks: the attention core (structured masks, `attend`,
`MultiHeadAttention`, RoPE), the causal self-attention kinds (`attention_kind`), activations,
norms, MLPs (incl. SwiGLU / PolyNorm gated), patch and position embeddings."""

from attnzoo.layers.activations import gelu_tanh
from attnzoo.layers.attention import attend, attention_weights
from attnzoo.layers.attention_kinds import ATTENTION_KINDS, attention_kind
from attnzoo.layers.causal_attention import CausalAttention, MaxLogit, max_logits
from attnzoo.layers.differential import differential_attend
from attnzoo.layers.differential_attention import (
    DifferentialAttention,
    GroupedDifferentialAttention,
    lambda_init,
)
from attnzoo.layers.gated_mlp import GatedMlp, PolyNorm
from attnzoo.layers.masks import (
    And,
    BlockLists,
    BlockSparse,
    Causal,
    Dense,
    LocalWindow1D,
    LocalWindow2D,
    Mask,
    Segments,
)
from attnzoo.layers.mixture_of_heads import MixtureOfHeadsAttention
from attnzoo.layers.mlp import Mlp
from attnzoo.layers.moba import MobaAttention
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.multi_token_attention import MultiTokenAttention
from attnzoo.layers.norms import layer_norm, rms_norm
from attnzoo.layers.patch_embed import PatchEmbed
from attnzoo.layers.posemb import sincos_2d
from attnzoo.layers.rope import apply_rope
from attnzoo.layers.subsampled_attention import SubsampledAttention
from attnzoo.layers.token_order import (
    from_window_first,
    to_window_first,
    window_first_permutation,
)

__all__ = [
    "ATTENTION_KINDS",
    "And",
    "BlockLists",
    "BlockSparse",
    "Causal",
    "CausalAttention",
    "Dense",
    "DifferentialAttention",
    "GatedMlp",
    "GroupedDifferentialAttention",
    "LocalWindow1D",
    "LocalWindow2D",
    "Mask",
    "MaxLogit",
    "MixtureOfHeadsAttention",
    "Mlp",
    "MobaAttention",
    "MultiHeadAttention",
    "MultiTokenAttention",
    "PatchEmbed",
    "PolyNorm",
    "Segments",
    "SubsampledAttention",
    "apply_rope",
    "attend",
    "attention_kind",
    "attention_weights",
    "differential_attend",
    "from_window_first",
    "gelu_tanh",
    "lambda_init",
    "layer_norm",
    "max_logits",
    "rms_norm",
    "sincos_2d",
    "to_window_first",
    "window_first_permutation",
]
