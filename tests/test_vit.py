"""ViT presets against published parameter counts and basic behaviour."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import attnzoo
from attnzoo.layers.posemb import sincos_2d


def _num_params(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


# timm / the original ViT at 224x224, patch 16, 1000 classes. Those add a position embedding
# to the class token too; big_vision (which we follow) does not: 192/384/768 fewer params.
@pytest.mark.parametrize(
    "name, published, width",
    [
        ("vit_tiny", 5_717_416, 192),
        ("vit_small", 22_050_664, 384),
        ("vit_base", 86_567_656, 768),
    ],
)
def test_param_counts_match_published(name, published, width):
    model = nnx.eval_shape(
        lambda: attnzoo.create_model(
            name, num_classes=1000, image_size=(224, 224), patch_size=16, rngs=nnx.Rngs(0)
        )
    )
    assert _num_params(model) == published - width


def test_registry_lists_and_rejects():
    assert {"vit_tiny", "vit_small", "vit_base"} <= set(attnzoo.list_models())
    with pytest.raises(ValueError, match="closest: vit_tiny"):
        attnzoo.create_model("vit_tiyn", num_classes=10)


@pytest.mark.parametrize("pool, posemb", [("tok", "learn"), ("gap", "sincos2d")])
def test_forward_shapes_and_zero_head(pool, posemb):
    model = attnzoo.create_model(
        "vit_tiny",
        num_classes=7,
        image_size=(8, 8),
        in_channels=1,
        patch_size=2,
        depth=2,
        width=32,
        num_heads=2,
        mlp_dim=64,
        pool=pool,
        posemb=posemb,
    )
    logits = model(jnp.ones((3, 8, 8, 1)))
    assert logits.shape == (3, 7)
    assert jnp.all(logits == 0)  # zero-initialised head, as in big_vision
    features = model.features(jnp.ones((3, 8, 8, 1)))
    assert features.shape == (3, 32)


def test_sincos_2d_matches_definition():
    table = sincos_2d(3, 4, 8)  # [12, 8]
    # token (row=2, col=1): x=1, y=2; omega_i = 10000^(-i/2) for i in 0..1
    omega = jnp.array([1.0, 10_000.0**-0.5])
    expected = jnp.concatenate(
        [jnp.sin(1 * omega), jnp.cos(1 * omega), jnp.sin(2 * omega), jnp.cos(2 * omega)]
    )
    assert jnp.allclose(table[2 * 4 + 1], expected, atol=1e-6)


def test_params_carry_logical_axes():
    model = attnzoo.create_model(
        "vit_tiny",
        num_classes=10,
        image_size=(8, 8),
        in_channels=1,
        patch_size=2,
        depth=1,
        width=32,
        num_heads=2,
        mlp_dim=64,
    )
    specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))
    assert tuple(specs["blocks"][0]["mlp"]["fc1"]["kernel"].get_value()) == ("embed", "mlp")
    assert tuple(specs["head"]["kernel"].get_value()) == ("embed", "classes")
