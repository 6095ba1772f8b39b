"""Scale-DiT's hierarchical mask against an independently built dense mask; the model's
information flow (local window, low-res never sees high-res); scaled anchors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers import attend
from attnzoo.layers.anchor_mask import LocalWithAnchors
from attnzoo.layers.masks import LocalWindow2D
from attnzoo.layers.posemb import sincos_2d
from attnzoo.zoo.diffusion.scale_dit import ScaleDiT

GRID, WINDOW, RADIUS, NUM_LOW = (8, 8), (4, 4), 2, 16


def independent_dense_mask() -> np.ndarray:
    """[high (window-first) | low] allowed pairs, from explicit coordinates and loops."""
    coords = []  # window-first: windows row-major, tokens row-major inside each window
    for wy in range(GRID[0] // WINDOW[0]):
        for wx in range(GRID[1] // WINDOW[1]):
            for iy in range(WINDOW[0]):
                for ix in range(WINDOW[1]):
                    coords.append((wy * WINDOW[0] + iy, wx * WINDOW[1] + ix))
    n = len(coords)
    dense = np.zeros((n + NUM_LOW, n + NUM_LOW), bool)
    for i in range(n + NUM_LOW):
        for j in range(n + NUM_LOW):
            if j >= n:
                dense[i, j] = True  # everyone sees the low-res tokens
            elif i < n:
                (qy, qx), (ky, kx) = coords[i], coords[j]
                dense[i, j] = max(abs(qy - ky), abs(qx - kx)) <= RADIUS
    return dense


MASK = LocalWithAnchors(LocalWindow2D(GRID, RADIUS, window=WINDOW), NUM_LOW)


def test_mask_matches_independent_dense_mask():
    want = independent_dense_mask()
    got = np.asarray(MASK.materialize(*want.shape))[0, 0]
    np.testing.assert_array_equal(got, want)
    n = GRID[0] * GRID[1]
    assert not got[n:, :n].any()  # low-res never sees high-res
    assert got[:n, n:].all()  # high-res sees every low-res token


@pytest.mark.parametrize("block", [(8, 8), (16, 16), (16, 32)])
def test_block_lists_are_exact(block):
    dense = independent_dense_mask()
    t = dense.shape[0]
    bq, bk = block
    nq, nk = -(-t // bq), -(-t // bk)
    padded = np.zeros((nq * bq, nk * bk), bool)
    padded[:t, :t] = dense
    want = padded.reshape(nq, bq, nk, bk).any((1, 3))
    lists = MASK.block_lists(t, t, bq, bk)
    got = np.zeros((nq, nk + 1), bool)
    np.put_along_axis(got, np.where(lists.indices[0, 0] >= 0, lists.indices[0, 0], nk), True, 1)
    np.testing.assert_array_equal(got[:, :nk], want)


def test_blocked_attention_matches_reference():
    t = GRID[0] * GRID[1] + NUM_LOW
    q, k, v = jax.random.normal(jax.random.key(0), (3, 1, t, 2, 16))
    np.testing.assert_allclose(
        attend(q, k, v, mask=MASK, impl="xla"),
        attend(q, k, v, mask=MASK, impl="reference"),
        atol=2e-5,
    )


def test_scaled_anchors_land_on_the_high_res_grid():
    high = sincos_2d(16, 16, 32).reshape(16, 16, 32)
    np.testing.assert_allclose(
        sincos_2d(4, 4, 32, scale=4.0).reshape(4, 4, 32), high[::4, ::4], atol=1e-6
    )


def test_information_flow_in_the_model():
    """One block with random weights: a high-res pixel change reaches only tokens within
    the radius; a low-res change reaches every high-res token."""
    with nnx.use_eager_sharding(False):
        model = nnx.jit(
            lambda: ScaleDiT(
                input_size=16,
                patch_size=2,
                in_channels=1,
                hidden_size=16,
                depth=1,
                num_heads=2,
                num_classes=0,
                radius=1,
                window=4,
                lora_rank=2,
                learn_sigma=False,
                rngs=nnx.Rngs(0),
            )
        )()

    @jax.jit
    def randomize(params):  # adaLN-Zero and LoRA-up start at zero: no flow to observe
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        return tree.unflatten([0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])

    nnx.update(model, randomize(nnx.state(model, nnx.Param)))
    run = nnx.jit(lambda m, x, xl: m(x, jnp.array([10]), x_low=xl, t_low=jnp.array([0])))
    x = jax.random.normal(jax.random.key(2), (1, 16, 16, 1))
    x_low = jax.random.normal(jax.random.key(3), (1, 8, 8, 1))
    base = np.asarray(run(model, x, x_low))[0, ..., 0]
    changed = np.asarray(run(model, x.at[0, 0, 0].add(1.0), x_low))[0, ..., 0] != base
    tokens = changed.reshape(8, 2, 8, 2).any((1, 3))  # per 2x2 patch token
    assert tokens[:2, :2].all() and not tokens[2:].any() and not tokens[:, 2:].any()
    moved = np.asarray(run(model, x, x_low.at[0, 7, 7].add(1.0)))[0, ..., 0] != base
    assert moved.reshape(8, 2, 8, 2).any((1, 3)).all()
