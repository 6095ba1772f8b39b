"""The registry of causal self-attention kinds (see :mod:`attnzoo.layers.causal_attention`
for the contract they share)."""

from __future__ import annotations

from attnzoo.layers.causal_attention import CausalAttention
from attnzoo.layers.differential_attention import (
    DifferentialAttention,
    GroupedDifferentialAttention,
)
from attnzoo.layers.mixture_of_heads import MixtureOfHeadsAttention
from attnzoo.layers.moba import MobaAttention
from attnzoo.layers.multi_token_attention import MultiTokenAttention
from attnzoo.layers.subsampled_attention import SubsampledAttention

__all__ = ["ATTENTION_KINDS", "attention_kind"]

ATTENTION_KINDS: dict[str, type[CausalAttention]] = {
    "dense": CausalAttention,
    "diff": DifferentialAttention,
    "gda": GroupedDifferentialAttention,
    "moba": MobaAttention,
    "moh": MixtureOfHeadsAttention,
    "mta": MultiTokenAttention,
    "ssa": SubsampledAttention,
}


def attention_kind(name: str) -> type[CausalAttention]:
    """The class of attention kind ``name``; unknown names raise a one-line ValueError."""
    if name not in ATTENTION_KINDS:
        raise ValueError(
            f"unknown attention kind {name!r}; valid kinds: {', '.join(sorted(ATTENTION_KINDS))}"
        )
    return ATTENTION_KINDS[name]
