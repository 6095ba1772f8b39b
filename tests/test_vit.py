"""ViT presets against published parameter counts and basic behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
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


def _np_layer_norm(x, p, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _np_gelu(x):  # tanh approximation (flax's default `nnx.gelu`)
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _np_attention(x, p):
    q, k, v = (
        np.einsum("bte,ehd->bthd", x, p[n]["kernel"]) + p[n]["bias"]
        for n in ("query", "key", "value")
    )
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhts,bshd->bthd", weights, v)
    return np.einsum("bthd,hde->bte", out, p["out"]["kernel"]) + p["out"]["bias"]


def _np_vit(params, images, *, patch, pool):
    """ViT forward (big_vision) in float64 numpy, from the params alone."""
    b, h, w, c = images.shape
    x = images.reshape(b, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, -1, patch * patch * c) @ params["stem"]["proj"]["kernel"]
    x = x + params["stem"]["proj"]["bias"] + params["posemb"]  # [b, n, width]
    if pool == "tok":
        x = np.concatenate([np.broadcast_to(params["cls"], (b, 1, x.shape[-1])), x], axis=1)
    for block in params["blocks"].values():
        x = x + _np_attention(_np_layer_norm(x, block["norm1"]), block["attn"])
        y = _np_layer_norm(x, block["norm2"])
        mlp = block["mlp"]
        hidden = _np_gelu(y @ mlp["fc1"]["kernel"] + mlp["fc1"]["bias"])
        x = x + hidden @ mlp["fc2"]["kernel"] + mlp["fc2"]["bias"]
    x = _np_layer_norm(x, params["norm"])
    x = x[:, 0] if pool == "tok" else x.mean(1)
    return x @ params["head"]["kernel"] + params["head"]["bias"]


@pytest.mark.parametrize("pool, posemb", [("tok", "learn"), ("gap", "sincos2d")])
def test_forward_matches_an_independent_numpy_vit(pool, posemb):
    model = attnzoo.create_model(
        "vit_tiny",
        num_classes=7,
        image_size=(8, 8),
        in_channels=2,
        patch_size=2,
        depth=2,
        width=32,
        num_heads=2,
        mlp_dim=64,
        pool=pool,
        posemb=posemb,
    )
    assert not np.asarray(model.head.kernel[...]).any()  # zero-initialised, as big_vision
    rng = np.random.default_rng(0)
    model.head.kernel[...] = jnp.asarray(rng.standard_normal((32, 7)), jnp.float32)
    if pool == "tok":
        model.cls[...] = jnp.asarray(rng.standard_normal((1, 1, 32)), jnp.float32)
    images = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    logits = np.asarray(model(jnp.asarray(images)))
    assert logits.shape == (3, 7)
    params = jax.tree.map(
        lambda x: np.asarray(x, np.float64), nnx.to_pure_dict(nnx.state(model, nnx.Param))
    )
    params["posemb"] = np.asarray(model.posemb[...], np.float64)  # sincos2d is not a Param
    want = _np_vit(params, images.astype(np.float64), patch=2, pool=pool)
    np.testing.assert_allclose(logits, want, rtol=2e-4, atol=2e-4)
    assert np.abs(want).max() > 0.1  # a real signal, not the zero head's


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
