"""Pathformer (Chen et al., ICLR 2024): multi-scale transformers with adaptive pathways.

Port of the official code (decisionintelligence/pathformer `models/PathFormer.py`,
`layers/AMS.py`): RevIN (no affine) → `Linear(1 → d)` on every value → layers of
adaptive multi-scale blocks (AMS) → flatten `[b, N, T·d]` (T-major) → `Linear(T·d →
horizon)` → RevIN denormalisation. An AMS block routes each series to the top-k of its
experts (`router.NoisyTopKRouter`), one dual-attention expert per patch size
(`dual_attention.DualAttentionExpert`), and returns the aggregate (+ the input with
`residual`) and its balance loss; the model sums the balance losses over layers.

Code vs paper: the official aggregator, followed here, combines expert outputs in log
space, `log Σ_i g_i exp(y_i)` (`SparseDispatcher.combine`), not the paper's `Σ_i g_i y_i`;
we evaluate it as a stable `logsumexp` weighted by the gates. The experts run on the
whole batch (the dispatcher's gather is replaced by zero gates), which gives the same
values. Parameters the official model registers but never uses are left out: AMS's
`end_MLP` (9,312 per layer), the two BatchNorms of every expert (`batch_norm=0`) and the
fixed attention scale stored as a parameter (17 per expert); the ETTh1 preset has
410,342 parameters, the official model 438,482 = 410,342 + 3·9,312 + 12·17.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import torch_dense
from attnzoo.zoo.registry import register
from attnzoo.zoo.timeseries.dual_attention import DualAttentionExpert
from attnzoo.zoo.timeseries.revin import revin_denormalize, revin_normalize
from attnzoo.zoo.timeseries.router import NoisyTopKRouter


class AdaptiveMultiScaleBlock(nnx.Module):
    """AMS: x `[b, T, N, d]` → (`[b, T, N, d]`, balance loss `[]`)."""

    def __init__(
        self,
        seq_len: int,
        num_nodes: int,
        d_model: int,
        d_ff: int,
        patch_sizes,
        k: int,
        residual: bool,
        *,
        rngs: nnx.Rngs,
    ):
        self.router = NoisyTopKRouter(seq_len, num_nodes, len(patch_sizes), k, rngs=rngs)
        self.experts = nnx.List(
            [
                DualAttentionExpert(seq_len, patch, num_nodes, d_model, d_ff, rngs=rngs)
                for patch in patch_sizes
            ]
        )
        self.residual = residual

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        gates, balance = self.router(x)  # [b, E]
        outputs = jnp.stack([expert(x) for expert in self.experts])  # [E, b, T, N, d]
        weights = gates.T[:, :, None, None, None]
        out = jax.nn.logsumexp(outputs, axis=0, b=weights)  # log Σ g_i exp(y_i)
        return (out + x if self.residual else out), balance


class Pathformer(nnx.Module):
    """x `[b, T, N]` → (forecast `[b, horizon, N]`, balance loss `[]`)."""

    def __init__(
        self,
        *,
        input_len: int,
        horizon: int,
        channels: int,
        d_model: int = 4,
        d_ff: int = 64,
        patch_sizes=((16, 12, 8, 32), (12, 8, 6, 4), (8, 6, 4, 2)),
        k: int = 3,
        residual: bool = True,
        revin: bool = True,
        rngs: nnx.Rngs,
    ):
        self.revin = revin
        self.embed = torch_dense(1, d_model, rngs=rngs)
        self.blocks = nnx.List(
            [
                AdaptiveMultiScaleBlock(
                    input_len, channels, d_model, d_ff, tuple(sizes), k, residual, rngs=rngs
                )
                for sizes in patch_sizes
            ]
        )
        self.head = torch_dense(input_len * d_model, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.revin:
            x, stats = revin_normalize(x)
        out = self.embed(x[..., None])  # [b, T, N, d]
        balance = jnp.zeros((), jnp.float32)
        for block in self.blocks:
            out, loss = block(out)
            balance = balance + loss
        b, t, n, d = out.shape
        out = self.head(out.transpose(0, 2, 1, 3).reshape(b, n, t * d))  # [b, N, H]
        out = out.transpose(0, 2, 1)
        return (revin_denormalize(out, stats) if self.revin else out), balance

    def route(self, x: jax.Array) -> list[jax.Array]:
        """The gates `[b, E]` of every block for x `[b, T, N]` (which patch sizes each
        series takes), computed as in `__call__`."""
        if self.revin:
            x, _ = revin_normalize(x)
        out, gates = self.embed(x[..., None]), []
        for block in self.blocks:
            gates.append(block.router(out)[0])
            out, _ = block(out)
        return gates


@register("pathformer", classifier=r"^head/", posemb={r"/posemb$": "1d"})
def pathformer(*, rngs: nnx.Rngs, **kwargs) -> Pathformer:
    """Pathformer; defaults are the official ETTh1 recipe (d 4, d_ff 64, 3 layers, k 3)."""
    return Pathformer(rngs=rngs, **kwargs)
