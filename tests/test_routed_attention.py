"""Attention routed per query (`attend(impl="xla")` with MoBA-style per-token block lists)
equals the materialised reference, values and gradients: duplicate and unused list slots,
the rest of the mask evaluated per tile, GQA, and the rows cut into several steps."""

import jax.numpy as jnp
import numpy as np
import pytest

from attnzoo.layers import attention, routed_attention
from attnzoo.layers.masks import BlockSparse, Causal, Segments
from attnzoo.layers.routed_attention import _pack, routing_of
from tests.test_attend import normal, qkv, run_grads


def _lists(shape, blocks, seed):
    """Random lists with repeats and -1 / out-of-range slots."""
    return jnp.asarray(np.random.default_rng(seed).integers(-1, blocks + 1, shape), jnp.int32)


def test_packing_puts_every_listed_pair_once_in_a_tile_of_its_block():
    lists = jnp.asarray([[0, 2, 2], [1, -1, 5], [2, 0, 1], [0, 0, 0]], jnp.int32)
    slot_query, tile_block = _pack(lists, blocks=3, tile=2)
    pairs = {(int(q), int(tile_block[i // 2])) for i, q in enumerate(slot_query) if q >= 0}
    assert sorted(pairs) == [(0, 0), (0, 2), (1, 1), (2, 0), (2, 1), (2, 2), (3, 0)]
    assert int(np.sum(np.asarray(slot_query) >= 0)) == 7  # each pair once


@pytest.mark.parametrize("row_bytes", [2**30, 1])  # all rows at once; one row per step
@pytest.mark.parametrize(
    "name,t,s,hkv,mask",
    [
        (
            "per_token_causal",
            48,
            48,
            2,
            lambda: Causal() & BlockSparse(1, 8, _lists((2, 4, 48, 3), 6, 0)),
        ),
        (
            "traced_offset",
            20,
            45,
            1,
            lambda: BlockSparse(1, 8, _lists((1, 1, 20, 2), 6, 1)) & Causal(jnp.int32(25)),
        ),
        (
            "pairs_of_rows_segments",
            41,
            37,
            4,
            lambda: (
                BlockSparse(2, 5, _lists((2, 1, 21, 4), 8, 2))
                & Segments(
                    jnp.asarray(np.repeat(np.arange(5), 9)[None, :41].repeat(2, 0)),
                    jnp.asarray(np.repeat(np.arange(5), 8)[None, :37].repeat(2, 0)),
                )
            ),
        ),
    ],
)
def test_routed_equals_reference(name, t, s, hkv, mask, row_bytes, monkeypatch):
    monkeypatch.setattr(routed_attention, "ROW_BYTES", row_bytes)
    mask = mask()
    assert routing_of(mask) is not None and mask.block_multiple()[0] < attention.ROUTED_ROWS
    q, k, v = qkv(t=t, s=s, hkv=hkv, seed=3)
    cot = normal((2, t, 4, 8), 4)
    got, got_grads = run_grads(q, k, v, mask, "xla", cot)
    want, want_grads = run_grads(q, k, v, mask, "reference", cot)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
