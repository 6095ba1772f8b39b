"""Every registered model (`list_models()`) at a tiny size: forward, backward, and every
parameter receives a gradient. A family that registers models adds its tiny kwargs and an
input here; a model without an entry fails `test_every_model_has_a_tiny_setting`."""

import fnmatch

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import attnzoo


def _gaze_input(rng):
    """Gaze models take (images, fixations `(x, y, duration_ms)`)."""
    images = jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32)
    fixations = rng.uniform(0, 1, (2, 4, 3)) * [1, 1, 500] + [0, 0, 50]
    return (images, jnp.asarray(fixations, jnp.float32)), {}


# glob of model names -> (tiny kwargs, input builder(rng)); the builder returns the input, or
# `(args, kwargs)` for models called with several inputs
TINY = {
    "vit_*": (
        dict(
            num_classes=5,
            image_size=(8, 8),
            in_channels=1,
            patch_size=4,
            width=16,
            depth=1,
            num_heads=2,
            mlp_dim=32,
        ),
        lambda rng: jnp.asarray(rng.standard_normal((2, 8, 8, 1)), jnp.float32),
    ),
    "biformer_*": (
        dict(
            num_classes=5,
            in_channels=1,
            depths=(1, 1, 1, 1),
            widths=(32, 32, 32, 32),
            topks=(1, 2, 4, -2),
            n_win=2,
        ),
        lambda rng: jnp.asarray(rng.standard_normal((2, 32, 32, 1)), jnp.float32),
    ),
    "pathformer": (
        dict(input_len=16, horizon=4, channels=2, d_ff=8, patch_sizes=((4, 2),), k=2),
        lambda rng: jnp.asarray(rng.standard_normal((2, 16, 2)), jnp.float32),
    ),
    "dlinear": (
        dict(input_len=16, horizon=4, channels=2),
        lambda rng: jnp.asarray(rng.standard_normal((2, 16, 2)), jnp.float32),
    ),
    "tppgaze": (
        dict(
            image_size=16,
            patch_size=8,
            backbone_width=16,
            backbone_depth=1,
            backbone_heads=2,
            feature_channels=4,
            d_model=16,
            num_layers=1,
            num_heads=2,
            mlp_dim=32,
            position_components=4,
        ),
        _gaze_input,
    ),
    "oat": (
        dict(
            image_size=16,
            patch_size=8,
            width=16,
            encoder_depth=1,
            decoder_depth=1,
            num_heads=2,
            mlp_dim=32,
        ),
        _gaze_input,
    ),
    "lm_*": (
        dict(vocab_size=32, width=16, depth=1, num_heads=2, num_kv_heads=1, mlp_dim=32),
        lambda rng: jnp.asarray(rng.integers(0, 32, (2, 8)), jnp.int32),
    ),
    # traffic models take (inputs [b, P, N], time [b, P+Q, 2]): a tuple input
    "gman": (
        dict(
            spatial_embedding=np.eye(4, 3, dtype=np.float32),
            input_len=3,
            horizon=2,
            steps_per_day=6,
            mean=50.0,
            std=10.0,
            num_blocks=1,
            num_heads=2,
            head_dim=2,
        ),
        lambda rng: (
            (
                jnp.asarray(rng.standard_normal((2, 3, 4)), jnp.float32),
                jnp.asarray(rng.integers(0, 6, (2, 5, 2)), jnp.int32),
            ),
            {},
        ),
    ),
    "traffic_linear": (
        dict(input_len=3, horizon=2, mean=50.0, std=10.0),
        lambda rng: ((jnp.asarray(rng.standard_normal((2, 3, 4)), jnp.float32), None), {}),
    ),
    "dit_*": (
        dict(input_size=8, in_channels=1, hidden_size=16, depth=1, num_heads=2, num_classes=3),
        lambda rng: ((_images(rng, 8), jnp.array([5, 900]), jnp.array([0, 3])), {}),
    ),
    "scale_dit_*": (
        dict(
            input_size=8,
            patch_size=2,
            in_channels=1,
            hidden_size=16,
            depth=1,
            num_heads=2,
            num_classes=3,
            radius=1,
            window=2,
            lora_rank=2,
        ),
        lambda rng: (
            (_images(rng, 8), jnp.array([5, 900]), jnp.array([0, 3])),
            dict(x_low=_images(rng, 4), t_low=jnp.array([0, 10])),
        ),
    ),
}

# glob of model names -> params that rightly receive no gradient: Scale-DiT's last block
# transforms the low-res tokens after their last use as keys/values (only high-res tokens
# reach the final layer), as in the official model.
UNUSED = {"scale_dit_*": ("blocks/0/lora_out/", "blocks/0/lora_fc1/", "blocks/0/lora_fc2/")}


def _images(rng, size: int) -> jax.Array:
    return jnp.asarray(rng.standard_normal((2, size, size, 1)), jnp.float32)


def _tiny(name: str):
    matches = [setting for pattern, setting in TINY.items() if fnmatch.fnmatch(name, pattern)]
    return matches[0] if matches else None


def test_every_model_has_a_tiny_setting():
    missing = [name for name in attnzoo.list_models() if _tiny(name) is None]
    assert not missing, f"add tiny kwargs + an input for {missing} to tests/test_models.py"


@pytest.mark.parametrize("name", attnzoo.list_models())
def test_forward_backward_every_param_gets_a_gradient(name):
    kwargs, make_input = _tiny(name)
    rng = np.random.default_rng(0)
    model = attnzoo.create_model(name, rngs=nnx.Rngs(0), **kwargs)
    # zero-initialised layers (a classifier head) would block every gradient behind them
    params = nnx.state(model, nnx.Param)
    noisy = jax.tree.map(lambda p: p + 0.1 * rng.standard_normal(p.shape).astype(p.dtype), params)
    nnx.update(model, noisy)
    inputs = make_input(rng)
    args, kw = inputs if isinstance(inputs, tuple) else ((inputs,), {})

    def loss(model):
        out, aux = model(*args, **kw), 0.0
        if isinstance(out, tuple):  # (prediction, auxiliary loss): forecasters
            out, aux = out
        return jnp.sum(out * jnp.asarray(rng.standard_normal(out.shape), out.dtype)) + aux

    value, grads = nnx.jit(nnx.value_and_grad(loss))(model)  # one compile, not op by op
    assert np.isfinite(float(value))
    flat = nnx.to_flat_state(grads)
    assert len(flat) == len(nnx.to_flat_state(params)) > 0
    unused = [p for pattern, ps in UNUSED.items() if fnmatch.fnmatch(name, pattern) for p in ps]
    for path, g in flat:
        g = np.asarray(g.get_value())
        assert np.isfinite(g).all(), path
        key = "/".join(map(str, path))
        if not any(key.startswith(p) for p in unused):
            assert np.abs(g).max() > 0, f"{key} receives no gradient"
