import jax
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.projections import project_together


@pytest.mark.parametrize("use_bias", [False, True])
def test_one_gemm_equals_each_layer_on_its_own(use_bias):
    rngs = nnx.Rngs(0)
    layers = (
        nnx.LinearGeneral(16, (4, 8), use_bias=use_bias, rngs=rngs),  # [e, heads, dim]
        nnx.LinearGeneral(16, (2, 8), use_bias=use_bias, rngs=rngs),
        nnx.Linear(16, 5, use_bias=use_bias, rngs=rngs),  # [e, out]
    )
    if use_bias:  # non-zero biases, so their placement is checked
        for m in layers:
            m.bias[...] = jax.random.normal(jax.random.key(m.bias.size), m.bias.shape)
    x = jax.random.normal(jax.random.key(1), (2, 3, 16))
    together = project_together(x, layers)
    for got, layer in zip(together, layers, strict=True):
        np.testing.assert_allclose(got, layer(x), rtol=1e-5, atol=1e-6)
    assert [p.shape for p in together] == [(2, 3, 4, 8), (2, 3, 2, 8), (2, 3, 5)]


def test_layers_with_and_without_bias_are_refused():
    rngs = nnx.Rngs(0)
    layers = (nnx.Linear(4, 4, rngs=rngs), nnx.Linear(4, 4, use_bias=False, rngs=rngs))
    with pytest.raises(ValueError, match="all layers with a bias or none"):
        project_together(np.ones((1, 4), np.float32), layers)
