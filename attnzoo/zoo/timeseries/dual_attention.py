"""Pathformer's expert: dual attention over one patch size (official `layers/Layer.py`,
`Transformer_Layer` with `batch_norm=0`).

x `[b, T, N, d]` (T steps, N nodes = variables, d embedding) is cut into `T / P` patches.
* Intra-patch: per patch, a learned query (one per node, generated from a 16-d node
  embedding) attends over [query; the patch's P steps] with node-specific K/V projections
  (generated from a node memory, `WeightGenerator(factorized=True)`), 2 heads of d/2, scale
  (d/2)^-1/2, then a shared `Linear-ReLU-Linear`; the per-patch outputs are mapped back
  to T steps by `Linear(T/P → T)`.
* Inter-patch: each patch flattened to d·P (d-major), embedded, plus a learned position
  embedding, self-attention over the patches with d heads of size P. The output
  `[b·N, T/P, d·P]` is reshaped to `[b, T, N, d]` without a transpose, as the official
  code does (it mixes nodes and time; kept for faithfulness).
Both attentions call `attend`. Output: `ffn(dropout(x + intra + inter)) + ...` with a
GELU FFN (residual), dropout 0.1 (0.2 inside the FFN). The FFN runs in row chunks
(`layers.chunked_mlp`: its [b, T, N, 64] hidden array never exists whole) and every
dropout draws the hash mask of `layers.dropout` (threefry masks cost more than the
model's matmuls on CPU).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.activations import gelu_exact
from attnzoo.layers.attention import attend
from attnzoo.layers.chunked_mlp import mlp_in_row_chunks
from attnzoo.layers.dropout import Dropout
from attnzoo.layers.mlp import torch_dense

MEMORY_DIM = 16  # node memory / query-embedding size (hard-coded officially)
FACTOR = 10  # rank of the factorised per-node weights (10x10 from a 100-d code)


def _uniform(rngs: nnx.Rngs, shape, bound: float) -> nnx.Param:
    return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))


class NodeWeights(nnx.Module):
    """`count` per-node linear maps d → d (`WeightGenerator(factorized=True)`): a node
    memory `[N, 16]` → MLP (64, 64, tanh) → a 10×10 code `M_n`; weight `P_i M_n Q_i`
    `[N, d, d]`, bias `vec(M_n) B_i` `[N, d]`."""

    def __init__(self, num_nodes: int, d: int, count: int, *, rngs: nnx.Rngs):
        self.memory = nnx.Param(jax.random.normal(rngs.params(), (num_nodes, MEMORY_DIM)))
        self.fc1 = torch_dense(MEMORY_DIM, 64, rngs=rngs)
        self.fc2 = torch_dense(64, 64, rngs=rngs)
        self.fc3 = torch_dense(64, FACTOR * FACTOR, rngs=rngs)
        # kaiming_uniform(a=√5) on torch tensors [in, out] bounds by 1/sqrt(out).
        self.p = _uniform(rngs, (count, d, FACTOR), FACTOR**-0.5)
        self.q = _uniform(rngs, (count, FACTOR, d), d**-0.5)
        self.b = _uniform(rngs, (count, FACTOR * FACTOR, d), d**-0.5)

    def __call__(self) -> tuple[jax.Array, jax.Array]:
        """(weights `[count, N, d, d]`, biases `[count, N, d]`)."""
        code = self.fc3(jnp.tanh(self.fc2(jnp.tanh(self.fc1(self.memory[...])))))  # [N, 100]
        biases = jnp.einsum("nm,cmd->cnd", code, self.b[...])
        code = code.reshape(-1, FACTOR, FACTOR)
        weights = jnp.einsum("cdf,nfg,cge->cnde", self.p[...], code, self.q[...])
        return weights, biases


class IntraPatchAttention(nnx.Module):
    """x `[b, T, N, d]` → `[b, T, N, d]` (see module docstring)."""

    HEADS = 2

    def __init__(self, seq_len: int, patch: int, num_nodes: int, d: int, *, rngs: nnx.Rngs):
        if d % self.HEADS:
            raise ValueError(f"d_model={d} must be divisible by {self.HEADS} heads")
        self.patch, self.patches = patch, seq_len // patch
        n = self.patches
        self.node_embedding = nnx.Param(
            jax.random.uniform(rngs.params(), (n, num_nodes, MEMORY_DIM))
        )  # torch.rand
        bound = MEMORY_DIM**-0.5
        self.query_kernel = _uniform(rngs, (n, MEMORY_DIM, d), bound)
        self.query_bias = _uniform(rngs, (n, d), bound)
        self.kv_weights = NodeWeights(num_nodes, d, 2, rngs=rngs)
        bound = d**-0.5
        self.shared_kernel = _uniform(rngs, (2, d, d), bound)
        self.shared_bias = _uniform(rngs, (2, d), bound)
        self.to_steps = torch_dense(n, seq_len, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, nodes, d = x.shape
        n, p, h = self.patches, self.patch, self.HEADS
        query = jnp.einsum("pnm,pmd->pnd", self.node_embedding[...], self.query_kernel[...])
        query = query + self.query_bias[:, None]  # [n, N, d]
        query = jnp.broadcast_to(query[None, :, None], (b, n, 1, nodes, d))
        patches = x.reshape(b, n, p, nodes, d)
        tokens = jnp.concatenate([query, patches], axis=2)  # [b, n, P+1, N, d]
        (wk, wv), (bk, bv) = self.kv_weights()
        key = jnp.einsum("bpsnd,nde->bpsne", tokens, wk) + bk
        value = jnp.einsum("bpsnd,nde->bpsne", tokens, wv) + bv

        def heads(z):  # [b, n, s, N, d] → [b·n·N, s, heads, d/heads]
            s = z.shape[2]
            return z.transpose(0, 1, 3, 2, 4).reshape(b * n * nodes, s, h, d // h)

        out = attend(heads(query), heads(key), heads(value), mask=None, scale=(d // h) ** -0.5)
        out = out.reshape(b, n, nodes, d)
        out = jax.nn.relu(out @ self.shared_kernel[0] + self.shared_bias[0])
        out = out @ self.shared_kernel[1] + self.shared_bias[1]  # [b, n, N, d]
        out = self.to_steps(out.transpose(0, 3, 2, 1))  # [b, d, N, T]
        return out.transpose(0, 3, 2, 1)


class InterPatchAttention(nnx.Module):
    """x `[b, T, N, d]` → `[b, T, N, d]` (see module docstring)."""

    def __init__(self, seq_len: int, patch: int, d: int, *, dropout: float = 0.1, rngs: nnx.Rngs):
        self.patch, self.patches, self.heads = patch, seq_len // patch, d
        width = d * patch
        self.embed = torch_dense(width, width, rngs=rngs)
        self.posemb = _uniform(rngs, (self.patches, width), 0.02)
        self.query = torch_dense(width, width, rngs=rngs)
        self.key = torch_dense(width, width, rngs=rngs)
        self.value = torch_dense(width, width, rngs=rngs)
        self.out = torch_dense(width, width, rngs=rngs)
        self.embed_dropout = Dropout(dropout, rngs=rngs)
        self.out_dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, nodes, d = x.shape
        n, p = self.patches, self.patch
        z = x.reshape(b, n, p, nodes, d).transpose(0, 3, 1, 4, 2).reshape(b * nodes, n, d * p)
        z = self.embed_dropout(self.embed(z) + self.posemb[...])

        def heads(y):  # [b·N, n, d·P] → [b·N, n, d heads, P]
            return y.reshape(b * nodes, n, self.heads, p)

        out = attend(heads(self.query(z)), heads(self.key(z)), heads(self.value(z)), mask=None)
        out = self.out_dropout(self.out(out.reshape(b * nodes, n, d * p)))
        return out.reshape(b, t, nodes, d)  # the official reshape, no transpose


class DualAttentionExpert(nnx.Module):
    """One patch size's expert: x `[b, T, N, d]` → `[b, T, N, d]`."""

    def __init__(
        self, seq_len: int, patch: int, num_nodes: int, d: int, d_ff: int, *, rngs: nnx.Rngs
    ):
        if seq_len % patch:
            raise ValueError(f"patch size {patch} does not divide the input length {seq_len}")
        self.intra = IntraPatchAttention(seq_len, patch, num_nodes, d, rngs=rngs)
        self.inter = InterPatchAttention(seq_len, patch, d, rngs=rngs)
        self.dropout = Dropout(0.1, rngs=rngs)
        self.ff1 = torch_dense(d, d_ff, (None, "mlp"), rngs=rngs)
        self.ff_dropout = Dropout(0.2, rngs=rngs)
        self.ff2 = torch_dense(d_ff, d, ("mlp", None), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = self.dropout(x + self.intra(x) + self.inter(x))
        ffn = mlp_in_row_chunks(out, self.ff1, self.ff2, gelu_exact, self.ff_dropout)
        return ffn + out
