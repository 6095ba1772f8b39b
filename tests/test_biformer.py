"""BiFormer: parameter counts of the official presets, forward shapes, train/eval modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import attnzoo


def _num_params(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _official_count(depths, widths, topks, in_ch=3, classes=1000, mlp_ratio=3) -> int:
    """Parameters of the official `models/biformer.py` modules, counted from their shapes."""

    def conv(i, o, k, groups=1):
        return i // groups * o * k * k + o

    total = conv(in_ch, widths[0] // 2, 3) + 2 * widths[0] // 2 + conv(widths[0] // 2, widths[0], 3)
    total += 2 * widths[0]  # stem BNs
    total += sum(conv(a, b, 3) + 2 * b for a, b in zip(widths[:-1], widths[1:]))
    for d, c, k in zip(depths, widths, topks):
        block = conv(c, c, 3, groups=c) + 2 * c + 2 * c  # pos_embed, norm1, norm2
        block += c * mlp_ratio * c + mlp_ratio * c + mlp_ratio * c * c + c  # mlp
        if k > 0:  # BRA: qkv (with bias), wo, lepe 5x5
            block += c * 3 * c + 3 * c + c * c + c + conv(c, c, 5, groups=c)
        else:  # AttentionLePE: qkv (no bias), proj, lepe 5x5
            block += c * 3 * c + c * c + c + conv(c, c, 5, groups=c)
        total += d * block
    return total + 2 * widths[-1] + widths[-1] * classes + classes  # final BN, head


@pytest.mark.parametrize("name", ["biformer_t", "biformer_s", "biformer_b"])
def test_param_counts_match_official(name):
    model = nnx.eval_shape(lambda: attnzoo.create_model(name, num_classes=1000))
    preset = attnzoo.zoo.vision.biformer.PRESETS[name.split("_")[1]]
    assert _num_params(model) == _official_count(
        preset["depths"], preset["widths"], preset["topks"]
    )
    if name == "biformer_t":
        assert _num_params(model) == 13_142_760  # the official BiFormer-T


SMALL = dict(depths=(1, 1, 1), widths=(16, 32, 64), head_dim=8)  # biformer_tiny's layout, cheaper


def test_tiny_forward_train_and_eval():
    model = attnzoo.create_model("biformer_tiny", num_classes=10, in_channels=1, **SMALL)
    x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
    forward = nnx.jit(lambda m, x: m(x))
    model.train()
    assert forward(model, x).shape == (4, 10)
    assert not np.allclose(model.norm.mean[...], 0.0)  # running statistics moved
    model.eval()
    logits = forward(model, x)
    swapped = forward(model, x[::-1])  # eval: each image independent of the batch
    np.testing.assert_allclose(swapped[::-1], logits, rtol=1e-4, atol=1e-5)
    grads = nnx.jit(nnx.grad(lambda m, x: m(x).sum()))(model, x)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_routed_stage_needs_divisible_maps():
    model = attnzoo.create_model("biformer_tiny", num_classes=10, in_channels=1, **SMALL)
    with pytest.raises(ValueError, match="not divisible into 7x7 regions"):
        model(jnp.zeros((1, 32, 32, 1)))
