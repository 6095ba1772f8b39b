"""The hash-mask dropout: keep rate, independence, block consistency, the layer's modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.dropout import Dropout, keep_mask

SEED = jnp.array([0x1234567, 0x89ABCDE], jnp.uint32)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.9])
def test_keeps_each_element_with_probability_one_minus_rate(rate):
    keep = np.asarray(keep_mask(SEED, (1000, 1000), rate))
    sigma = np.sqrt(rate * (1 - rate) / keep.size)
    assert abs(keep.mean() - (1 - rate)) < 5 * sigma
    # Rows, columns and the two halves of a row each keep about the same share.
    for share in (keep.mean(0), keep.mean(1)):
        assert abs(share.mean() - (1 - rate)) < 5 * sigma
        assert share.std() < 5 * np.sqrt(rate * (1 - rate) / 1000)


def _correlation(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return np.corrcoef(a, b)[0, 1]


def test_masks_are_uncorrelated_across_keys_neighbours_and_shifts():
    n, bound = 1_000_000, 5 / 1000  # 5 sigma of a correlation over 1e6 pairs
    seeds = [jax.random.bits(jax.random.key(k), (2,), jnp.uint32) for k in range(3)]
    a, b, c = (keep_mask(seed, (n,), 0.5) for seed in seeds)
    assert abs(_correlation(a, b)) < bound and abs(_correlation(a, c)) < bound
    assert abs(_correlation(a[1:], a[:-1])) < bound  # neighbouring elements
    for shift in (1, 7, 64, 4096):  # no key's stream is another's shifted
        assert abs(_correlation(a[shift:], b[:-shift])) < bound


def test_a_block_draws_the_same_mask_as_the_whole_array():
    whole = keep_mask(SEED, (3, 10, 8), 0.3)
    block = keep_mask(SEED, (3, 4, 8), 0.3, offset=5 * 8, strides=(80, 8, 1))
    np.testing.assert_array_equal(block, whole[:, 5:9])


def test_layer_train_and_eval():
    layer = Dropout(0.25, rngs=nnx.Rngs(dropout=0))
    x = jnp.ones((400, 500))
    y = np.asarray(layer(x))
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt(0.25 * 0.75 / x.size) / 0.75  # mean kept
    assert not np.array_equal(y, np.asarray(layer(x)))  # the stream advances per call
    key = jax.random.key(3)
    np.testing.assert_array_equal(layer(x, rngs=key), layer(x, rngs=key))
    layer.eval()
    assert layer.seed() is None
    np.testing.assert_array_equal(layer(x), x)
    layer.train()
    assert not np.asarray(Dropout(1.0, rngs=nnx.Rngs(0))(x)).any()
    np.testing.assert_array_equal(Dropout(0.0, rngs=nnx.Rngs(0))(x), x)


def test_training_without_a_stream_is_refused():
    with pytest.raises(ValueError, match="no rngs stream or key"):
        Dropout(0.5)(jnp.ones(4))
