"""GMAN (Zheng et al., AAAI 2020, "GMAN: A Graph Multi-Attention Network for Traffic
Prediction"), as the official TensorFlow code (zhengchuanpan/GMAN `METR/model.py`).

    X [b, P, N] → FC(1→D→D) ─┐
    STE = FC(FC(SE)) + FC(FC(onehot(dow) ‖ onehot(tod)))         [b, P+Q, N, D]
    encoder: L × STAtt(X, STE_P) → transform attention(STE_Q ← STE_P, X)
    decoder: L × STAtt(X, STE_Q) → FC(D→D→1, dropout 0.1) → [b, Q, N]

STAtt block: H_S = spatial attention over the N nodes, H_T = temporal attention over the
steps, both on concat(X, STE) with ReLU(FC) queries/keys/values (K heads of d); the temporal
one is causal (diagonal included, as the METR code); gated fusion z = σ(FC(H_S) + FC(H_T)),
H = FC(FC(z H_S + (1 - z) H_T)); output X + H.

Code details followed (differences from the paper's text): every FC is a 1×1 conv with
Glorot-uniform kernels and zero biases; a ReLU-activated FC applies batch norm (ε = 1e-3)
before the ReLU, an FC without activation has no batch norm; dropout 0.1 before both output
FCs; batch norm as the official `tf_utils` + `train.py` (`batch_norm.py`: zero-debiased
moving statistics whose decay grows 0.5 → 0.99, halving its distance to 1 every
`bn_decay_steps`, the official 5 epochs; the default 430 is 5 Los-loop epochs at batch 16).
The model returns `pred · std + mean`, the official train.py's unscaling, so its output
is in the data's original units. Optionally the spatial attention only sees graph neighbours
(`graph_mask`), an extension (the official attention is over all nodes), and
`day_of_week=False` leaves the day-of-week one-hot out of the temporal embedding, for a
series too short for its test days to occur in training (Los-loop's single week): the
weights of an unseen day never train and would feed their random init into every test
window.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers.attention import attend
from attnzoo.layers.dropout import Dropout
from attnzoo.layers.linear import Linear
from attnzoo.layers.masks import Causal, Dense
from attnzoo.zoo.registry import register
from attnzoo.zoo.traffic.batch_norm import ScheduledBatchNorm


class Constant(nnx.Variable):
    """A fixed array of the model (not trained): the spatial embedding, the graph mask."""


class FC(nnx.Module):
    """Stacked 1×1 convs on the last axis: `x [..., in] → [..., units[-1]]`; each layer with
    `relu=True` is Linear → BatchNorm → ReLU, else Linear only (official `FC`/`conv2d`)."""

    def __init__(
        self,
        in_dim: int,
        units: tuple[int, ...],
        relus: tuple[bool, ...],
        *,
        use_bias: bool = True,
        dropout: float = 0.0,
        bn_decay_steps: int,
        rngs: nnx.Rngs,
    ):
        dims = (in_dim, *units)
        self.linears = nnx.List(
            Linear(
                a,
                b,
                use_bias=use_bias,
                kernel_init=nnx.initializers.glorot_uniform(),
                rngs=rngs,
            )
            for a, b in zip(dims[:-1], dims[1:])
        )
        self.norms = nnx.List(
            ScheduledBatchNorm(b, decay_steps=bn_decay_steps) if relu else None
            for b, relu in zip(units, relus)
        )
        self.dropout = Dropout(dropout, rngs=rngs) if dropout else None

    def __call__(self, x: jax.Array) -> jax.Array:
        for linear, norm in zip(self.linears, self.norms):
            if self.dropout is not None:
                x = self.dropout(x)
            x = linear(x)
            if norm is not None:
                x = jax.nn.relu(norm(x))
        return x


def _heads(x: jax.Array, num_heads: int) -> jax.Array:
    """`[..., L, K·d]` → `[prod(...), L, K, d]` (official `split(x, K, axis=-1)`)."""
    return x.reshape(-1, x.shape[-2], num_heads, x.shape[-1] // num_heads)


class NodeAttention(nnx.Module):
    """Multi-head attention of concat(X, STE) along one axis (nodes or steps), official
    `spatialAttention`/`temporalAttention`/`transformAttention` with `attend`:
    q, k, v = ReLU(FC) of their inputs; output FC(D→D→D, ReLU then linear)."""

    def __init__(self, q_dim, kv_dim, v_dim, num_heads, head_dim, *, bn_decay_steps, rngs):
        dim = num_heads * head_dim
        fc = dict(bn_decay_steps=bn_decay_steps, rngs=rngs)
        self.num_heads = num_heads
        self.query = FC(q_dim, (dim,), (True,), **fc)
        self.key = FC(kv_dim, (dim,), (True,), **fc)
        self.value = FC(v_dim, (dim,), (True,), **fc)
        self.out = FC(dim, (dim, dim), (True, False), **fc)

    def __call__(self, q_in, k_in, v_in, *, mask, impl: str) -> jax.Array:
        """Inputs `[B, L, ·]` with the attended axis at `L` → `[B, Lq, D]`."""
        k = self.num_heads
        q = _heads(self.query(q_in), k)  # [B, Lq, K, d]
        key = _heads(self.key(k_in), k)  # [B, Lk, K, d]
        v = _heads(self.value(v_in), k)  # [B, Lk, K, d]
        out = attend(q, key, v, mask=mask, impl=impl)  # scale d^-1/2 as the official code
        return self.out(out.reshape(*q_in.shape[:-1], -1))

    def weights(self, q_in, k_in, *, mask, impl: str) -> jax.Array:
        """Attention weights `[B, Lq, K, Lk]`: `attend` applied to one-hot values."""
        q = _heads(self.query(q_in), self.num_heads)
        key = _heads(self.key(k_in), self.num_heads)
        length = key.shape[1]
        one_hot = jnp.broadcast_to(
            jnp.eye(length, dtype=q.dtype)[None, :, None], key.shape[:3] + (length,)
        )
        return attend(q, key, one_hot, mask=mask, impl=impl)


class GatedFusion(nnx.Module):
    """z = σ(FC_nobias(H_S) + FC(H_T)); H = FC(FC(z H_S + (1 - z) H_T))."""

    def __init__(self, dim: int, *, bn_decay_steps: int, rngs: nnx.Rngs):
        fc = dict(bn_decay_steps=bn_decay_steps, rngs=rngs)
        self.spatial = FC(dim, (dim,), (False,), use_bias=False, **fc)
        self.temporal = FC(dim, (dim,), (False,), **fc)
        self.out = FC(dim, (dim, dim), (True, False), **fc)

    def __call__(self, hs: jax.Array, ht: jax.Array) -> jax.Array:
        z = jax.nn.sigmoid(self.spatial(hs) + self.temporal(ht))
        return self.out(z * hs + (1 - z) * ht)


class STAttBlock(nnx.Module):
    """X `[b, T, N, D]`, STE `[b, T, N, D]` → X + fused(spatial, causal temporal)."""

    def __init__(self, dim, num_heads, head_dim, *, bn_decay_steps, rngs):
        att = dict(bn_decay_steps=bn_decay_steps, rngs=rngs)
        self.spatial = NodeAttention(2 * dim, 2 * dim, 2 * dim, num_heads, head_dim, **att)
        self.temporal = NodeAttention(2 * dim, 2 * dim, 2 * dim, num_heads, head_dim, **att)
        self.fusion = GatedFusion(dim, bn_decay_steps=bn_decay_steps, rngs=rngs)

    def __call__(self, x, ste, *, graph_mask, impl: str) -> jax.Array:
        b, t, n, d = x.shape
        h = jnp.concatenate([x, ste], -1)  # [b, T, N, 2D]
        hs = self.spatial(h, h, h, mask=graph_mask, impl=impl)  # over nodes: [b, T, N, D]
        ht = h.transpose(0, 2, 1, 3)  # [b, N, T, 2D]
        ht = self.temporal(ht, ht, ht, mask=Causal(), impl=impl).transpose(0, 2, 1, 3)
        return x + self.fusion(hs, ht)


class GMAN(nnx.Module):
    """(inputs `[b, P, N]` z-scored, time `[b, P+Q, 2]` int (day-of-week, time-of-day))
    → forecast `[b, Q, N]` in original units (`· std + mean`)."""

    def __init__(
        self,
        *,
        spatial_embedding: np.ndarray,
        input_len: int,
        horizon: int,
        steps_per_day: int,
        mean: float,
        std: float,
        num_blocks: int = 3,
        num_heads: int = 8,
        head_dim: int = 8,
        adjacency: np.ndarray | None = None,
        day_of_week: bool = True,
        bn_decay_steps: int = 430,
        attention_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        if min(num_heads, head_dim, input_len, horizon) < 1 or num_blocks < 0:
            raise ValueError(
                f"GMAN needs num_heads, head_dim, input_len, horizon >= 1 and num_blocks >= 0; "
                f"got {num_heads}, {head_dim}, {input_len}, {horizon}, {num_blocks}"
            )
        if np.ndim(spatial_embedding) != 2:
            raise ValueError(f"spatial_embedding must be [N, D], got {np.shape(spatial_embedding)}")
        dim = num_heads * head_dim
        fc = dict(bn_decay_steps=bn_decay_steps, rngs=rngs)
        self.input_len, self.horizon, self.steps_per_day = input_len, horizon, steps_per_day
        self.mean, self.std, self.impl = float(mean), float(std), attention_impl
        self.spatial_embedding = Constant(jnp.asarray(spatial_embedding, jnp.float32))
        self.graph_mask = None if adjacency is None else Constant(jnp.asarray(adjacency) > 0)
        self.input_fc = FC(1, (dim, dim), (True, False), **fc)
        self.se_fc = FC(spatial_embedding.shape[1], (dim, dim), (True, False), **fc)
        self.day_of_week = day_of_week
        self.te_fc = FC(7 * day_of_week + steps_per_day, (dim, dim), (True, False), **fc)
        block = dict(dim=dim, num_heads=num_heads, head_dim=head_dim, **fc)
        self.encoder = nnx.List(STAttBlock(**block) for _ in range(num_blocks))
        self.transform = NodeAttention(dim, dim, dim, num_heads, head_dim, **fc)
        self.decoder = nnx.List(STAttBlock(**block) for _ in range(num_blocks))
        self.output_fc = FC(dim, (dim, 1), (True, False), dropout=0.1, **fc)

    def st_embedding(self, time: jax.Array) -> jax.Array:
        """time `[b, P+Q, 2]` → STE `[b, P+Q, N, D]` (official `STEmbedding`)."""
        se = self.se_fc(self.spatial_embedding[...])  # [N, D]
        one_hot = jax.nn.one_hot(time[..., 1], self.steps_per_day)  # [b, P+Q, T]
        if self.day_of_week:
            one_hot = jnp.concatenate([jax.nn.one_hot(time[..., 0], 7), one_hot], -1)
        te = self.te_fc(one_hot)  # [b, P+Q, D]
        return se[None, None] + te[:, :, None]

    def spatial_attention(self, inputs: jax.Array, time: jax.Array) -> jax.Array:
        """The first encoder block's spatial attention weights `[b, P, K, N, N]` (query
        node → key node), for plots."""
        mask = None if self.graph_mask is None else Dense(self.graph_mask[...])
        x = self.input_fc(inputs[..., None])  # [b, P, N, D]
        h = jnp.concatenate([x, self.st_embedding(time)[:, : self.input_len]], -1)
        w = self.encoder[0].spatial.weights(h, h, mask=mask, impl=self.impl)  # [bP, N, K, N]
        return w.reshape(*h.shape[:2], *w.shape[1:]).transpose(0, 1, 3, 2, 4)

    def __call__(self, inputs: jax.Array, time: jax.Array) -> jax.Array:
        p = self.input_len
        mask = None if self.graph_mask is None else Dense(self.graph_mask[...])
        x = self.input_fc(inputs[..., None])  # [b, P, N, D]
        ste = self.st_embedding(time)
        ste_p, ste_q = ste[:, :p], ste[:, p:]  # [b, P, N, D], [b, Q, N, D]
        for block in self.encoder:
            x = block(x, ste_p, graph_mask=mask, impl=self.impl)
        # Transform attention: each node attends from the Q future steps to the P past ones.
        to_nodes = lambda a: a.transpose(0, 2, 1, 3)  # noqa: E731  [b, T, N, D] → [b, N, T, D]
        x = to_nodes(
            self.transform(to_nodes(ste_q), to_nodes(ste_p), to_nodes(x), mask=None, impl=self.impl)
        )  # [b, Q, N, D]
        for block in self.decoder:
            x = block(x, ste_q, graph_mask=mask, impl=self.impl)
        out = self.output_fc(x)[..., 0]  # [b, Q, N]
        return out * self.std + self.mean


@register("gman")
def gman(*, rngs: nnx.Rngs, **kwargs) -> GMAN:
    return GMAN(rngs=rngs, **kwargs)
