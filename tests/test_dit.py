"""DiT against the official definitions (facebookresearch/DiT `models.py`), in numpy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.posemb import sincos_2d, timestep_embedding
from attnzoo.zoo.diffusion.dit import PRESETS, DiT, DiTBlock, num_params, unpatchify

TINY = dict(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=1, num_heads=2)


def official_timestep_embedding(t, dim, max_period=10000):
    """`TimestepEmbedder.timestep_embedding`, written out in numpy."""
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half, dtype=np.float64) / half)
    args = np.asarray(t, np.float64)[:, None] * freqs[None]
    return np.concatenate([np.cos(args), np.sin(args)], axis=-1)


def official_2d_posemb(embed_dim, grid_size):
    """`get_2d_sincos_pos_embed`: meshgrid(w, h), emb_h from grid[0], emb_w from grid[1]."""

    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape(2, 1, grid_size, grid_size)
    return np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], 1)


def build(**kwargs) -> DiT:
    with nnx.use_eager_sharding(False):  # one compile instead of op-by-op init
        return nnx.jit(lambda: DiT(**TINY, **kwargs, rngs=nnx.Rngs(0)))()


@pytest.fixture(scope="module")
def model():
    return build(num_classes=5)


def test_timestep_embedding_matches_official():
    t = np.array([0.0, 1.0, 17.0, 999.0, 250.5])
    np.testing.assert_allclose(
        timestep_embedding(jnp.asarray(t), 256), official_timestep_embedding(t, 256), atol=2e-4
    )


def test_posemb_matches_official_coordinate_order(model):
    np.testing.assert_allclose(sincos_2d(4, 4, 32), official_2d_posemb(32, 4), atol=1e-6)
    np.testing.assert_allclose(model.pos_embed[...], official_2d_posemb(32, 4), atol=1e-6)


def test_unpatchify_matches_official_einsum():
    x = np.random.default_rng(0).normal(size=(2, 9, 2 * 2 * 3)).astype(np.float32)
    # official: [N, h, w, p, p, c] -> einsum nhwpqc->nchpwq -> [N, c, H, W]
    ref = np.einsum("nhwpqc->nchpwq", x.reshape(2, 3, 3, 2, 2, 3)).reshape(2, 3, 6, 6)
    np.testing.assert_array_equal(unpatchify(jnp.asarray(x), (3, 3), 2), ref.transpose(0, 2, 3, 1))


def test_adaln_zero_block_is_identity_at_init(model):
    block = model.blocks[0]
    assert isinstance(block, DiTBlock)
    x = jax.random.normal(jax.random.key(0), (2, 6, 32))
    c = jax.random.normal(jax.random.key(1), (2, 32))
    np.testing.assert_array_equal(nnx.jit(lambda b, x, c: b(x, c))(block, x, c), x)


def test_output_is_zero_at_init_and_shaped(model):
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    out = nnx.jit(lambda m, x: m(x, jnp.array([3, 500]), jnp.array([1, 5])))(model, x)
    assert out.shape == (2, 8, 8, 6)  # learned sigma: 2C channels
    np.testing.assert_array_equal(out, 0.0)


def test_label_dropout_uses_the_null_class(model):
    labels = jnp.arange(64) % 5
    dropped = model.y_embedder(labels, rng=jax.random.key(0))
    table = model.y_embedder.table[...]
    is_null = np.all(np.asarray(dropped) == np.asarray(table[5]), axis=-1)
    assert table.shape[0] == 6 and 0 < is_null.sum() < 64  # p = 0.1 drops some, not all
    np.testing.assert_array_equal(model.y_embedder(labels), table[labels])


def test_official_parameter_counts():
    """Counts at input 32, 4 channels, 1000 classes, learned sigma (frozen posemb
    included); blocks are identical, so depth d = count(1) + (d - 1) * per-block."""
    official = dict(s2=32_963_360, b2=130_512_416, l2=458_102_816, xl2=675_129_632)

    def count(size, depth):
        kwargs = {**PRESETS[size], "depth": depth, "input_size": 32, "in_channels": 4}
        with nnx.use_eager_sharding(False):
            return num_params(nnx.eval_shape(lambda: DiT(**kwargs, rngs=nnx.Rngs(0))))

    for size, expected in official.items():
        one, two = count(size, 1), count(size, 2)
        assert one + (PRESETS[size]["depth"] - 1) * (two - one) == expected, size


def test_unconditional_model_refuses_labels():
    m = build(num_classes=0)
    x = jnp.zeros((1, 8, 8, 3))
    assert nnx.jit(lambda m, x: m(x, jnp.array([1])))(m, x).shape == (1, 8, 8, 6)
    with pytest.raises(ValueError, match="unconditional"):
        m(x, jnp.array([1]), jnp.array([0]))
    with pytest.raises(ValueError, match="class-conditional"):
        m.null_class  # noqa: B018
