"""Structured masks: materialize vs independent numpy definitions; block lists vs the dense mask."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnzoo.layers.masks import (
    And,
    BlockLists,
    BlockSparse,
    Causal,
    Dense,
    LocalWindow1D,
    LocalWindow2D,
    Segments,
    block_lists,
    dense_mask,
)

# ----------------------------------------------------------------------------- numpy oracles


def np_causal(t, s, offset=0):
    return np.tril(np.ones((t, s), bool), k=offset)


def np_local1d(t, s, left, right):
    m = np.zeros((t, s), bool)
    for i in range(t):
        for j in range(s):
            m[i, j] = i - left <= j <= i + right
    return m


def np_local2d(t, s, grid, radius):
    _, w = grid
    m = np.zeros((t, s), bool)
    for i in range(t):
        for j in range(s):
            (yi, xi), (yj, xj) = divmod(i, w), divmod(j, w)
            m[i, j] = abs(yi - yj) <= radius and abs(xi - xj) <= radius
    return m


def np_segments(q_ids, kv_ids):
    return q_ids[:, None, :, None] == kv_ids[:, None, None, :]


def np_block_sparse(t, s, bq, bk, indices):
    b, h, nq, _ = indices.shape
    nk = -(-s // bk)
    m = np.zeros((b, h, t, s), bool)
    for bi, hi, qb in itertools.product(range(b), range(h), range(nq)):
        for kb in indices[bi, hi, qb]:
            if 0 <= kb < nk:
                m[bi, hi, qb * bq : (qb + 1) * bq, kb * bk : (kb + 1) * bk] = True
    return m


def expected_block_sets(dense, bq, bk):
    """{(b, h, qb): set of key blocks with any True} from a dense [B, H, T, S] mask."""
    dense = np.asarray(dense)
    b, h, t, s = dense.shape
    out = {}
    for bi, hi, qb in itertools.product(range(b), range(h), range(-(-t // bq))):
        rows = dense[bi, hi, qb * bq : (qb + 1) * bq]
        out[bi, hi, qb] = {
            kb for kb in range(-(-s // bk)) if rows[:, kb * bk : (kb + 1) * bk].any()
        }
    return out


def assert_block_lists_match(lists, dense, bq, bk):
    assert isinstance(lists, BlockLists)
    assert isinstance(lists.max_k, int)
    idx, cnt = np.asarray(lists.indices), np.asarray(lists.counts)
    assert idx.dtype == np.int32 and cnt.dtype == np.int32
    dense = np.asarray(dense)
    b, h = max(dense.shape[0], idx.shape[0]), max(dense.shape[1], idx.shape[1])
    dense = np.broadcast_to(dense, (b, h, *dense.shape[2:]))
    idx = np.broadcast_to(idx, (b, h, *idx.shape[2:]))
    cnt = np.broadcast_to(cnt, (b, h, cnt.shape[-1]))
    want = expected_block_sets(dense, bq, bk)
    assert idx.shape[2] == cnt.shape[2] == len({k[2] for k in want})
    for (bi, hi, qb), blocks in want.items():
        row, c = idx[bi, hi, qb], cnt[bi, hi, qb]
        assert c == len(blocks), (bi, hi, qb, row, blocks)
        assert list(row[:c]) == sorted(blocks), (bi, hi, qb, row, blocks)
        assert (row[c:] == -1).all()


# ----------------------------------------------------------------------------- materialize


@pytest.mark.parametrize("t,s,offset", [(7, 7, 0), (5, 9, 4), (9, 5, -2), (6, 6, 3)])
def test_causal_materialize(t, s, offset):
    got = Causal(offset).materialize(t, s)
    assert got.shape == (1, 1, t, s) and got.dtype == jnp.bool_
    np.testing.assert_array_equal(got[0, 0], np_causal(t, s, offset))


@pytest.mark.parametrize("t,s,left,right", [(9, 9, 2, 1), (6, 11, 0, 3), (11, 6, 4, 0)])
def test_local1d_materialize(t, s, left, right):
    got = LocalWindow1D(left, right).materialize(t, s)
    np.testing.assert_array_equal(got[0, 0], np_local1d(t, s, left, right))


@pytest.mark.parametrize("grid,radius,t,s", [((4, 5), 1, 20, 20), ((3, 6), 2, 18, 13)])
def test_local2d_materialize(grid, radius, t, s):
    got = LocalWindow2D(grid, radius).materialize(t, s)
    np.testing.assert_array_equal(got[0, 0], np_local2d(t, s, grid, radius))


def test_local2d_rejects_too_long():
    with pytest.raises(ValueError, match="holds 12 tokens"):
        LocalWindow2D((3, 4), 1).materialize(13, 12)


def test_segments_materialize():
    rng = np.random.default_rng(0)
    q_ids = rng.integers(0, 3, (2, 7))
    kv_ids = rng.integers(0, 3, (2, 10))
    got = Segments(jnp.asarray(q_ids), jnp.asarray(kv_ids)).materialize(7, 10)
    np.testing.assert_array_equal(got, np_segments(q_ids, kv_ids))
    self_got = Segments(jnp.asarray(q_ids)).materialize(7, 7)
    np.testing.assert_array_equal(self_got, np_segments(q_ids, q_ids))


def test_block_sparse_materialize():
    rng = np.random.default_rng(1)
    t, s, bq, bk = 13, 17, 4, 5  # 4 query blocks, 4 key blocks, both partial
    idx = rng.integers(-1, 4, (2, 3, 4, 2)).astype(np.int32)
    got = BlockSparse(bq, bk, jnp.asarray(idx)).materialize(t, s)
    np.testing.assert_array_equal(got, np_block_sparse(t, s, bq, bk, idx))


def test_dense_and_combination():
    rng = np.random.default_rng(2)
    dm = rng.random((2, 1, 6, 8)) < 0.6
    m = Dense(jnp.asarray(dm)) & Causal(2) & LocalWindow1D(1, 1)
    assert isinstance(m, And) and len(m.masks) == 3  # nested Ands flatten
    want = dm & np_causal(6, 8, 2) & np_local1d(6, 8, 1, 1)
    np.testing.assert_array_equal(m.materialize(6, 8), want)
    np.testing.assert_array_equal(Dense(jnp.asarray(dm[0, 0])).materialize(6, 8)[0, 0], dm[0, 0])
    assert (Causal() & None) == Causal() and (None & Causal()) == Causal()


def test_none_helpers():
    assert dense_mask(None, 3, 4).shape == (1, 1, 3, 4) and dense_mask(None, 3, 4).all()
    lists = block_lists(None, 10, 7, 4, 3)
    assert_block_lists_match(lists, np.ones((1, 1, 10, 7), bool), 4, 3)


def test_shape_errors():
    with pytest.raises(ValueError, match="query blocks"):
        BlockSparse(4, 4, jnp.zeros((1, 1, 2, 1), jnp.int32)).materialize(12, 12)
    with pytest.raises(ValueError, match="Segments"):
        Segments(jnp.zeros((2, 5), jnp.int32)).materialize(6, 6)
    with pytest.raises(ValueError, match="Dense mask"):
        Dense(jnp.ones((4, 4), bool)).materialize(4, 5)
    with pytest.raises(ValueError, match="left"):
        LocalWindow1D(-1, 2)


# ----------------------------------------------------------------------------- block lists

# (t, s, block_q, block_k): divisible and partial last blocks, T < S, T > S, bq != bk, and
# block sizes equal to / different from BlockSparse's own (4, 4).
CASES = [(21, 11, 4, 4), (16, 16, 4, 8), (11, 21, 5, 5), (13, 13, 8, 3)]


def _masks(t, s):
    """Every mask kind at lengths (t, s), built from fixed random data."""
    rng = np.random.default_rng(t * 100 + s)
    q_ids = jnp.asarray(np.sort(rng.integers(0, 3, (2, t)), axis=-1))
    kv_ids = jnp.asarray(np.sort(rng.integers(0, 3, (2, s)), axis=-1))
    dense = jnp.asarray(rng.random((1, 2, t, s)) < 0.15)
    sparse_idx = jnp.asarray(rng.integers(-1, -(-s // 4), (2, 2, -(-t // 4), 3)), jnp.int32)
    grid = (4, 6)  # 24 tokens >= every length above
    return {
        "causal": Causal(),
        "causal_offset": Causal(3),
        "causal_neg": Causal(-4),
        "local1d": LocalWindow1D(2, 1),
        "local1d_left": LocalWindow1D(5, 0),
        "local2d": LocalWindow2D(grid, 1),
        "block_sparse": BlockSparse(4, 4, sparse_idx),
        "segments": Segments(q_ids, kv_ids),
        "dense": Dense(dense),
        "and": Causal() & LocalWindow1D(3, 3) & Segments(q_ids, kv_ids),
        "and_sparse": BlockSparse(4, 4, sparse_idx) & Causal(1),
    }


@pytest.mark.parametrize("t,s,bq,bk", CASES)
def test_block_lists_match_dense(t, s, bq, bk):
    for name, mask in _masks(t, s).items():
        dense = mask.materialize(t, s)
        lists = mask.block_lists(t, s, bq, bk)
        try:
            assert_block_lists_match(lists, dense, bq, bk)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


def test_static_block_lists_are_tight():
    # Causal / local windows give analytic lists exactly as wide as the densest row.
    assert Causal().block_lists(64, 64, 8, 8).max_k == 8
    assert LocalWindow1D(4, 4).block_lists(64, 64, 8, 8).max_k == 3
    assert LocalWindow2D((8, 8), 1).block_lists(64, 64, 8, 8).max_k == 3
    m = Causal() & LocalWindow1D(4, 0)
    assert m.block_lists(64, 64, 8, 8).max_k == 2
    bs = BlockSparse(8, 8, jnp.zeros((1, 1, 8, 3), jnp.int32))
    assert bs.block_lists(64, 64, 8, 8).max_k == 3
    assert bs.block_lists(64, 64, 16, 4).max_k == 2 * 3 * 2


def test_repeat_last():
    lists = BlockLists(
        jnp.array([[[[1, 3, -1], [-1, -1, -1], [0, 2, 4]]]], jnp.int32),
        jnp.array([[[2, 0, 3]]], jnp.int32),
    )
    np.testing.assert_array_equal(lists.repeat_last(), [[[[1, 3, 3], [0, 0, 0], [0, 2, 4]]]])


# ----------------------------------------------------------------------------- pytrees / jit


def test_masks_pass_through_jit():
    t = s = 12
    rng = np.random.default_rng(3)
    idx = jnp.asarray(rng.integers(-1, 3, (1, 1, 3, 2)), jnp.int32)
    masks = [
        Causal(2),
        LocalWindow1D(1, 2),
        LocalWindow2D((3, 4), 1),
        BlockSparse(4, 4, idx),
        Segments(jnp.asarray(rng.integers(0, 2, (2, t)))),
        Dense(jnp.ones((t, s), bool)),
        Causal() & LocalWindow1D(2, 0),
    ]
    f = jax.jit(lambda m: m.materialize(t, s))
    for m in masks:
        np.testing.assert_array_equal(f(m), m.materialize(t, s))
    # static structure stays static: no leaves for positional masks with int offsets
    assert jax.tree.leaves(Causal(3) & LocalWindow1D(1, 1)) == []


def test_traced_causal_offset():
    t, s, bq, bk = 3, 16, 2, 4

    @jax.jit
    def f(offset):
        m = Causal(offset)
        return m.materialize(t, s), m.block_lists(t, s, bq, bk)

    for offset in (0, 5, 13):
        dense, lists = f(jnp.int32(offset))
        np.testing.assert_array_equal(dense[0, 0], np_causal(t, s, offset))
        assert_block_lists_match(lists, dense, bq, bk)


def test_local_window_traced_offset_matches_static():
    """A traced offset (a KV-cache index) gives the static offset's mask and covering lists."""
    for offset in (0, 5, 13):
        static = Causal(offset) & LocalWindow1D(3, 1, offset)
        traced = jax.jit(lambda o: Causal(o) & LocalWindow1D(3, 1, o))(offset)
        np.testing.assert_array_equal(traced.materialize(4, 20), static.materialize(4, 20))
        for bq, bk in ((1, 4), (4, 8)):
            want = static.block_lists(4, 20, bq, bk).matrix(-(-20 // bk))
            got = traced.masks[1].block_lists(4, 20, bq, bk).matrix(-(-20 // bk))
            assert np.all(np.asarray(got) >= np.asarray(want))
    assert LocalWindow1D(2, 0).shift_queries(3) == LocalWindow1D(2, 0, 3)
