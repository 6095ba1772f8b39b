"""An official DiT checkpoint (synthetic: official names and shapes) converts with parity.

The reference is facebookresearch/DiT `models.py` written in numpy (float64) on NCHW
inputs, not attnzoo's code: conv patch embedding + the MAE-style sin-cos table (meshgrid
with w first), [cos, sin] timestep frequencies (max period 1e4, 256 dims) through
Linear-SiLU-Linear, label table, adaLN-Zero blocks (chunks shift/scale/gate x msa/mlp),
LayerNorm without affine (eps 1e-6), timm attention (fused qkv split (3, heads, head_dim),
scale head_dim^-0.5), tanh-GELU MLP, final adaLN layer, `unpatchify` by
`nhwpqc->nchpwq`, then NCHW -> NHWC for the comparison.
"""

import numpy as np
import pytest
from safetensors.numpy import save_file

from attnzoo.convert import convert
from attnzoo.zoo.registry import create_model
from attnzoo.zoo.release import write_release
from tests.numpy_reference import gelu_tanh, layer_norm, linear, silu, softmax

D, DEPTH, P, C, SIZE, CLASSES, FREQ = 64, 2, 2, 4, 8, 10, 256


def official_pos_embed(width: int, grid: int) -> np.ndarray:
    """`get_2d_sincos_pos_embed`: half the channels for each meshgrid plane (w first),
    each half [sin, cos] with omega = 1e4^(-i / (width / 4))."""
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))

    def one_d(pos):
        omega = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float64) / (width / 4))
        angles = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([one_d(gw), one_d(gh)], axis=1)[None].astype(np.float32)


def official_state(rng, *, learn_sigma=True, null_row=True) -> dict[str, np.ndarray]:
    out = C * (2 if learn_sigma else 1)
    sd = {}

    def linear(key, o, i, gain=1.0):
        sd[f"{key}.weight"] = gain * rng.normal(size=(o, i)) * i**-0.5
        sd[f"{key}.bias"] = 0.1 * rng.normal(size=(o,))

    sd["x_embedder.proj.weight"] = rng.normal(size=(D, C, P, P)) * (C * P * P) ** -0.5
    sd["x_embedder.proj.bias"] = 0.1 * rng.normal(size=(D,))
    sd["pos_embed"] = official_pos_embed(D, SIZE // P)
    linear("t_embedder.mlp.0", D, FREQ, gain=4.0)
    linear("t_embedder.mlp.2", D, D)
    sd["y_embedder.embedding_table.weight"] = rng.normal(size=(CLASSES + null_row, D))
    for i in range(DEPTH):
        b = f"blocks.{i}."
        linear(b + "attn.qkv", 3 * D, D)
        linear(b + "attn.proj", D, D)
        linear(b + "mlp.fc1", 4 * D, D)
        linear(b + "mlp.fc2", D, 4 * D)
        linear(b + "adaLN_modulation.1", 6 * D, D, gain=0.5)
    linear("final_layer.linear", P * P * out, D)
    linear("final_layer.adaLN_modulation.1", 2 * D, D, gain=0.5)
    return {k: v.astype(np.float32) for k, v in sd.items()}


def official_forward(sd, x_nchw, t, y, heads):
    """`DiT.forward(x, t, y)` in eval mode (no label dropout) -> NCHW output."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}

    n, g = x_nchw.shape[0], x_nchw.shape[-1] // P
    patches = x_nchw.reshape(n, C, g, P, g, P)
    x = np.einsum("ncipjq,dcpq->nijd", patches, sd["x_embedder.proj.weight"]).reshape(n, -1, D)
    x = x + sd["x_embedder.proj.bias"] + sd["pos_embed"]
    freqs = np.exp(-np.log(10000) * np.arange(FREQ // 2) / (FREQ // 2))
    args = t[:, None].astype(np.float64) * freqs[None]
    t_emb = linear(
        silu(linear(np.concatenate([np.cos(args), np.sin(args)], -1), sd, "t_embedder.mlp.0")),
        sd,
        "t_embedder.mlp.2",
    )
    c = t_emb + sd["y_embedder.embedding_table.weight"][y]

    def modulate(h, shift, scale):
        return h * (1 + scale[:, None]) + shift[:, None]

    hd = D // heads
    for i in range(DEPTH):
        b = f"blocks.{i}."
        mods = np.split(linear(silu(c), sd, b + "adaLN_modulation.1"), 6, axis=1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        h = modulate(layer_norm(x), shift_msa, scale_msa)
        qkv = linear(h, sd, b + "attn.qkv").reshape(n, -1, 3, heads, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv  # [n, heads, T, hd]
        att = softmax(q * hd**-0.5 @ k.transpose(0, 1, 3, 2))
        a = (att @ v).transpose(0, 2, 1, 3).reshape(n, -1, D)
        x = x + gate_msa[:, None] * linear(a, sd, b + "attn.proj")
        h = modulate(layer_norm(x), shift_mlp, scale_mlp)
        h = linear(gelu_tanh(linear(h, sd, b + "mlp.fc1")), sd, b + "mlp.fc2")
        x = x + gate_mlp[:, None] * h
    shift, scale = np.split(linear(silu(c), sd, "final_layer.adaLN_modulation.1"), 2, axis=1)
    x = linear(modulate(layer_norm(x), shift, scale), sd, "final_layer.linear")
    out = x.shape[-1] // (P * P)
    x = np.einsum("nhwpqc->nchpwq", x.reshape(n, g, g, P, P, out))
    return x.reshape(n, out, g * P, g * P)


@pytest.mark.parametrize(
    "arch, heads, learn_sigma, null_row, options",
    [
        ("dit_tiny", 4, True, True, {}),  # heads: the preset's; 10 classes + the null row
        ("dit_xl2", 8, False, False, {"num_heads": 8, "class_dropout_prob": 0}),
    ],
)
def test_dit_matches_the_official_forward(tmp_path, arch, heads, learn_sigma, null_row, options):
    rng = np.random.default_rng(0)
    sd = official_state(rng, learn_sigma=learn_sigma, null_row=null_row)
    save_file(sd, str(tmp_path / "dit.safetensors"))
    spec, params = convert(arch, str(tmp_path / "dit.safetensors"), **options)
    kwargs = spec["kwargs"]
    assert (kwargs["input_size"], kwargs["patch_size"], kwargs["in_channels"]) == (SIZE, P, C)
    assert (kwargs["hidden_size"], kwargs["depth"], kwargs["num_heads"]) == (D, DEPTH, heads)
    assert (kwargs["num_classes"], kwargs["learn_sigma"]) == (CLASSES, learn_sigma)
    record = write_release(params, spec, str(tmp_path), f"{arch}.test")
    model = create_model(arch, pretrained=str(tmp_path / record["file"]))

    x = rng.normal(size=(3, SIZE, SIZE, C)).astype(np.float32)
    t = np.array([0.0, 17.5, 999.0], np.float32)
    y = np.array([3, CLASSES if null_row else 0, 9])  # the null class when there is one
    got = np.asarray(model(x, t, y))
    expected = official_forward(sd, x.transpose(0, 3, 1, 2), t, y, heads).transpose(0, 2, 3, 1)
    assert got.shape == (3, SIZE, SIZE, C * (2 if learn_sigma else 1))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


def test_leftover_missing_and_foreign_tensors_are_refused(tmp_path):
    sd = official_state(np.random.default_rng(1))
    path = str(tmp_path / "bad.safetensors")
    save_file({**sd, "blocks.0.foo": np.ones(D, np.float32)}, path)
    with pytest.raises(ValueError, match="no place in this model: blocks.0.foo"):
        convert("dit_tiny", path)
    save_file({k: v for k, v in sd.items() if k != "blocks.1.adaLN_modulation.1.bias"}, path)
    with pytest.raises(ValueError, match="lacks blocks.1.adaLN_modulation.1.bias"):
        convert("dit_tiny", path)
    save_file({**sd, "pos_embed": sd["pos_embed"] + 0.01}, path)
    with pytest.raises(ValueError, match="pos_embed differs from the fixed 2-D sin-cos table"):
        convert("dit_tiny", path)
