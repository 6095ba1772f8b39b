"""Bi-level routing attention (BRA; BiFormer, Zhu et al. 2023; official `ops/bra_legacy.py`).

On an ``H x W`` map cut into ``S x S`` regions (``n_win = S``): one linear gives
``[q | k | v]``; region-level q and k are the means over each region's tokens; the region
affinity ``(q_r * scale) k_r^T`` (q, k detached: routing gets no gradient) picks the top-k
regions per region; every query token attends, under one softmax, to all tokens of its
region's top-k regions. LCE (a depthwise conv on v at full resolution) is added to the
attention output before the output linear.

Here the token-to-token step is :func:`attend` with a ``BlockSparse`` mask over the tokens
in window-first order (one region = one block), so the xla path gathers only the routed
key blocks and Pallas kernels can serve it. :func:`bra_gather_reference` is the official
gather formulation, kept as the test oracle.

Official quirk kept: ``scale = qk_dim ** -0.5`` over the full q/k width, not per head, both
for routing and for the token attention.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.attention import attend
from attnzoo.layers.conv import depthwise_conv
from attnzoo.layers.masks import BlockSparse
from attnzoo.layers.mlp import dense
from attnzoo.layers.token_order import from_window_first, to_window_first

# timm's trunc_normal_(std=.02) truncates at +-2 absolute (100 sigma): a plain normal.
_TRUNC_NORMAL = nnx.initializers.normal(stddev=0.02)


def region_size(grid: tuple[int, int], n_win: int) -> tuple[int, int]:
    """Tokens per region side; ``grid`` must be divisible by ``n_win``."""
    if grid[0] % n_win or grid[1] % n_win:
        raise ValueError(
            f"feature map {grid[0]}x{grid[1]} is not divisible into {n_win}x{n_win} regions"
        )
    return grid[0] // n_win, grid[1] // n_win


def route(q: jax.Array, k: jax.Array, *, n_regions: int, topk: int, scale: float) -> jax.Array:
    """Top-k routed regions per region, int32 ``[b, n_regions, topk]``.

    q, k: window-first ``[b, n, c]``; the region descriptors are their per-region means,
    detached (official ``diff_routing=False``). Ties resolve to the lower region id.
    """
    b, n, c = q.shape
    if not 0 < topk <= n_regions:
        raise ValueError(f"topk must be in [1, {n_regions}] (the number of regions), got {topk}")
    q_r = jax.lax.stop_gradient(q.reshape(b, n_regions, -1, c).mean(2))  # [b, R, c]
    k_r = jax.lax.stop_gradient(k.reshape(b, n_regions, -1, c).mean(2))  # [b, R, c]
    affinity = jnp.einsum("brc,bsc->brs", q_r * scale, k_r, preferred_element_type=jnp.float32)
    return jax.lax.top_k(affinity, topk)[1].astype(jnp.int32)  # [b, R, topk]


def routed_attention(q, k, v, indices, *, region_tokens: int, scale: float, impl: str = "auto"):
    """Attention of each region's queries over its routed regions' keys.

    q, k ``[b, n, h, d]``, v ``[b, n, h, dv]`` in window-first order; ``indices``
    ``[b, R, topk]`` -> ``[b, n, h, dv]``.
    """
    mask = BlockSparse(region_tokens, region_tokens, indices[:, None])  # [b, 1, R, topk]
    return attend(q, k, v, mask=mask, scale=scale, impl=impl)


def bra_gather_reference(q, k, v, indices, *, region_tokens: int, scale: float) -> jax.Array:
    """The official gather formulation (oracle): shapes as :func:`routed_attention`."""
    b, n, h, d = q.shape
    r, dv = n // region_tokens, v.shape[-1]
    qr = q.reshape(b, r, region_tokens, h, d)
    kr = k.reshape(b, r, region_tokens, h, d)
    vr = v.reshape(b, r, region_tokens, h, dv)
    bidx = jnp.arange(b)[:, None, None]
    k_sel = kr[bidx, indices].reshape(b, r, -1, h, d)  # [b, R, topk*rt, h, d]
    v_sel = vr[bidx, indices].reshape(b, r, -1, h, dv)
    logits = jnp.einsum("brqhd,brkhd->brhqk", qr * scale, k_sel, preferred_element_type=jnp.float32)
    p = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("brhqk,brkhd->brqhd", p, v_sel.astype(jnp.float32))
    return out.reshape(b, n, h, dv).astype(q.dtype)


class BiLevelRoutingAttention(nnx.Module):
    """BRA on NHWC maps ``[b, H, W, dim] -> [b, H, W, dim]`` (official defaults: no kv
    downsampling, no routing params, hard non-differentiable routing, qkvo projections).

    Args:
      dim: channels; num_heads: heads (``qk_dim`` and ``dim`` divisible by it).
      n_win: regions per side ``S`` (``H`` and ``W`` divisible by it).
      topk: routed regions per region.
      qk_dim: q/k width, default ``dim``.
      side_dwconv: LCE kernel size (0 disables it).
      impl: passed to :func:`attend`.
      record_routing: sow the routing indices ``[b, S*S, topk]`` as ``nnx.Intermediate``
        ``"routing_indices"`` (collect with ``nnx.capture``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        n_win: int = 7,
        topk: int = 4,
        qk_dim: int | None = None,
        side_dwconv: int = 5,
        impl: str = "auto",
        record_routing: bool = False,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        qk_dim = qk_dim or dim
        if qk_dim % num_heads or dim % num_heads:
            raise ValueError(
                f"qk_dim={qk_dim} and dim={dim} must be divisible by num_heads={num_heads}"
            )
        self.dim, self.qk_dim, self.num_heads = dim, qk_dim, num_heads
        self.n_win, self.topk, self.impl, self.record_routing = n_win, topk, impl, record_routing
        self.scale = qk_dim**-0.5
        linear = dict(kernel_init=_TRUNC_NORMAL, dtype=dtype, rngs=rngs)
        self.qkv = dense(dim, 2 * qk_dim + dim, ("embed", "mlp"), **linear)  # [q | k | v]
        self.out = dense(dim, dim, ("mlp", "embed"), **linear)
        self.lepe = (
            depthwise_conv(dim, side_dwconv, dtype=dtype, rngs=rngs) if side_dwconv else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        b, hgt, wid, _ = x.shape
        grid, window = (hgt, wid), region_size((hgt, wid), self.n_win)
        qkv = self.qkv(x)  # [b, H, W, 2 qk + dim]
        q, k, v = jnp.split(qkv, [self.qk_dim, 2 * self.qk_dim], axis=-1)

        def heads(t):  # [b, H, W, c] -> window-first [b, n, h, c / h]
            t = to_window_first(t.reshape(b, hgt * wid, -1), grid, window)
            return t.reshape(b, hgt * wid, self.num_heads, -1)

        qh, kh, vh = heads(q), heads(k), heads(v)
        indices = route(
            qh.reshape(b, hgt * wid, -1),
            kh.reshape(b, hgt * wid, -1),
            n_regions=self.n_win**2,
            topk=self.topk,
            scale=self.scale,
        )  # [b, S*S, topk]
        if self.record_routing:
            self.sow(nnx.Intermediate, "routing_indices", indices)
        out = routed_attention(
            qh,
            kh,
            vh,
            indices,
            region_tokens=window[0] * window[1],
            scale=self.scale,
            impl=self.impl,
        )  # [b, n, h, dv]
        out = from_window_first(out.reshape(b, hgt * wid, self.dim), grid, window)
        out = out.reshape(b, hgt, wid, self.dim)
        if self.lepe is not None:
            out = out + self.lepe(v)  # LCE on v, full resolution
        return self.out(out)
