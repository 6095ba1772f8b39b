"""Official ViT checkpoints (synthetic, official names and shapes) convert with output parity.

The reference forwards below are written from timm's `VisionTransformer` and big_vision's
`vit.py` in numpy (NCHW convolution as patch einsum, fused qkv, exact vs tanh GELU), not
from attnzoo's code.
"""

import numpy as np
import pytest
from safetensors.numpy import save_file

from attnzoo.convert import convert
from attnzoo.zoo.registry import create_model
from attnzoo.zoo.release import write_release
from tests.helpers import cli
from tests.numpy_reference import gelu_exact, gelu_tanh, layer_norm, softmax

D, HEADS, MLP, DEPTH, P, C, GRID, CLASSES = 16, 2, 32, 2, 4, 3, 2, 5


def _heads_attention(q, k, v):
    """q, k, v `[b, n, h, d]` -> `[b, n, h*d]`."""
    logits = np.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(q.shape[-1])
    out = np.einsum("bhnm,bmhd->bnhd", softmax(logits), v)
    return out.reshape(*out.shape[:2], -1)


def timm_state(rng) -> dict[str, np.ndarray]:
    n = GRID * GRID
    sd = {
        "cls_token": rng.normal(size=(1, 1, D)),
        "pos_embed": rng.normal(size=(1, n + 1, D)),
        "patch_embed.proj.weight": rng.normal(size=(D, C, P, P)) * 0.2,
        "patch_embed.proj.bias": rng.normal(size=(D,)),
        "norm.weight": 1 + 0.1 * rng.normal(size=(D,)),
        "norm.bias": 0.1 * rng.normal(size=(D,)),
        "head.weight": rng.normal(size=(CLASSES, D)),
        "head.bias": rng.normal(size=(CLASSES,)),
    }
    for i in range(DEPTH):
        shapes = {
            "norm1.weight": (D,),
            "norm1.bias": (D,),
            "attn.qkv.weight": (3 * D, D),
            "attn.qkv.bias": (3 * D,),
            "attn.proj.weight": (D, D),
            "attn.proj.bias": (D,),
            "norm2.weight": (D,),
            "norm2.bias": (D,),
            "mlp.fc1.weight": (MLP, D),
            "mlp.fc1.bias": (MLP,),
            "mlp.fc2.weight": (D, MLP),
            "mlp.fc2.bias": (D,),
        }
        for name, shape in shapes.items():
            scale = 0.3 if name.endswith("weight") and len(shape) == 2 else 0.1
            base = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0
            sd[f"blocks.{i}.{name}"] = base + scale * rng.normal(size=shape)
    return {k: v.astype(np.float32) for k, v in sd.items()}


def timm_forward(sd, images_nchw):
    """timm `VisionTransformer.forward` (class token, pos_embed incl. it, pre-norm blocks)."""
    b = images_nchw.shape[0]
    x = images_nchw.reshape(b, C, GRID, P, GRID, P)
    x = np.einsum("bcipjq,dcpq->bijd", x, sd["patch_embed.proj.weight"]).reshape(b, -1, D)
    x = x + sd["patch_embed.proj.bias"]
    x = np.concatenate([np.broadcast_to(sd["cls_token"], (b, 1, D)), x], 1) + sd["pos_embed"]
    for i in range(DEPTH):
        w = {k[len(f"blocks.{i}.") :]: v for k, v in sd.items() if k.startswith(f"blocks.{i}.")}
        h = layer_norm(x, w["norm1.weight"], w["norm1.bias"])
        qkv = (h @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]).reshape(b, -1, 3, HEADS, D // HEADS)
        a = _heads_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
        x = x + a @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        h = layer_norm(x, w["norm2.weight"], w["norm2.bias"])
        h = gelu_exact(h @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"])
        x = x + h @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    x = layer_norm(x, sd["norm.weight"], sd["norm.bias"])[:, 0]
    return x @ sd["head.weight"].T + sd["head.bias"]


def big_vision_state(rng, pool: str) -> dict[str, np.ndarray]:
    sd = {
        "embedding/kernel": rng.normal(size=(P, P, C, D)) * 0.2,
        "embedding/bias": rng.normal(size=(D,)),
        "pos_embedding": rng.normal(size=(1, GRID * GRID, D)),
        "Transformer/encoder_norm/scale": 1 + 0.1 * rng.normal(size=(D,)),
        "Transformer/encoder_norm/bias": 0.1 * rng.normal(size=(D,)),
        "head/kernel": rng.normal(size=(D, CLASSES)),
        "head/bias": rng.normal(size=(CLASSES,)),
    }
    if pool == "tok":
        sd["cls"] = rng.normal(size=(1, 1, D))
    for i in range(DEPTH):
        b = f"Transformer/encoderblock_{i}/"
        for ln in ("LayerNorm_0", "LayerNorm_1"):
            sd[f"{b}{ln}/scale"] = 1 + 0.1 * rng.normal(size=(D,))
            sd[f"{b}{ln}/bias"] = 0.1 * rng.normal(size=(D,))
        for proj in ("query", "key", "value"):
            a = f"{b}MultiHeadDotProductAttention_0/{proj}"
            sd[f"{a}/kernel"] = 0.3 * rng.normal(size=(D, HEADS, D // HEADS))
            sd[f"{a}/bias"] = 0.1 * rng.normal(size=(HEADS, D // HEADS))
        sd[f"{b}MultiHeadDotProductAttention_0/out/kernel"] = 0.3 * rng.normal(
            size=(HEADS, D // HEADS, D)
        )
        sd[f"{b}MultiHeadDotProductAttention_0/out/bias"] = 0.1 * rng.normal(size=(D,))
        sd[f"{b}MlpBlock_0/Dense_0/kernel"] = 0.3 * rng.normal(size=(D, MLP))
        sd[f"{b}MlpBlock_0/Dense_0/bias"] = 0.1 * rng.normal(size=(MLP,))
        sd[f"{b}MlpBlock_0/Dense_1/kernel"] = 0.3 * rng.normal(size=(MLP, D))
        sd[f"{b}MlpBlock_0/Dense_1/bias"] = 0.1 * rng.normal(size=(D,))
    return {k: v.astype(np.float32) for k, v in sd.items()}


def big_vision_forward(sd, images_nhwc):
    """big_vision `vit._Model.__call__`: conv stem, posemb on patches, then cls, tanh GELU."""
    b = images_nhwc.shape[0]
    x = images_nhwc.reshape(b, GRID, P, GRID, P, C)
    x = np.einsum("bipjqc,pqcd->bijd", x, sd["embedding/kernel"]).reshape(b, -1, D)
    x = x + sd["embedding/bias"] + sd["pos_embedding"]
    if "cls" in sd:
        x = np.concatenate([np.broadcast_to(sd["cls"], (b, 1, D)), x], 1)
    for i in range(DEPTH):
        w = {
            k.split("/", 2)[2]: v
            for k, v in sd.items()
            if k.startswith(f"Transformer/encoderblock_{i}/")
        }
        a = "MultiHeadDotProductAttention_0/"
        h = layer_norm(x, w["LayerNorm_0/scale"], w["LayerNorm_0/bias"])
        q, k, v = (
            np.einsum("bnd,dhk->bnhk", h, w[f"{a}{p}/kernel"]) + w[f"{a}{p}/bias"]
            for p in ("query", "key", "value")
        )
        o = _heads_attention(q, k, v).reshape(b, -1, HEADS, D // HEADS)
        x = x + np.einsum("bnhk,hkd->bnd", o, w[f"{a}out/kernel"]) + w[f"{a}out/bias"]
        h = layer_norm(x, w["LayerNorm_1/scale"], w["LayerNorm_1/bias"])
        h = gelu_tanh(h @ w["MlpBlock_0/Dense_0/kernel"] + w["MlpBlock_0/Dense_0/bias"])
        x = x + h @ w["MlpBlock_0/Dense_1/kernel"] + w["MlpBlock_0/Dense_1/bias"]
    x = layer_norm(x, sd["Transformer/encoder_norm/scale"], sd["Transformer/encoder_norm/bias"])
    x = x[:, 0] if "cls" in sd else x.mean(1)
    return x @ sd["head/kernel"] + sd["head/bias"]


def _zoo_logits(spec, params, images_nhwc, tmp_path):
    record = write_release(params, spec, str(tmp_path), "vit_tiny.test")
    model = create_model("vit_tiny", pretrained=str(tmp_path / record["file"]))
    return np.asarray(model(images_nhwc))


def test_timm_vit_matches_the_official_forward(tmp_path):
    rng = np.random.default_rng(0)
    sd = timm_state(rng)
    save_file(sd, str(tmp_path / "timm.safetensors"))
    spec, params = convert("vit_tiny", str(tmp_path / "timm.safetensors"), num_heads=HEADS)
    images = rng.normal(size=(2, GRID * P, GRID * P, C)).astype(np.float32)
    expected = timm_forward(sd, images.transpose(0, 3, 1, 2))
    got = _zoo_logits(spec, params, images, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("pool", ["tok", "gap"])
def test_big_vision_vit_matches_the_official_forward(tmp_path, pool):
    rng = np.random.default_rng(1)
    sd = big_vision_state(rng, pool)
    np.savez(tmp_path / "bv.npz", **sd)
    spec, params = convert("vit_tiny", str(tmp_path / "bv.npz"))
    assert spec["kwargs"]["pool"] == pool and spec["kwargs"]["num_heads"] == HEADS
    images = rng.normal(size=(2, GRID * P, GRID * P, C)).astype(np.float32)
    got = _zoo_logits(spec, params, images, tmp_path)
    np.testing.assert_allclose(got, big_vision_forward(sd, images), rtol=2e-4, atol=2e-4)


def test_leftover_and_missing_tensors_are_refused(tmp_path):
    sd = timm_state(np.random.default_rng(2))
    save_file(
        {**sd, "blocks.0.ls1.gamma": np.ones(D, np.float32)}, str(tmp_path / "extra.safetensors")
    )
    with pytest.raises(ValueError, match="no place in this model: blocks.0.ls1.gamma"):
        convert("vit_tiny", str(tmp_path / "extra.safetensors"), num_heads=HEADS)
    del sd["blocks.1.mlp.fc2.bias"]
    save_file(sd, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="lacks blocks.1.mlp.fc2.bias"):
        convert("vit_tiny", str(tmp_path / "missing.safetensors"), num_heads=HEADS)


def test_convert_cli_writes_a_release_and_fails_in_one_line(tmp_path):
    save_file(timm_state(np.random.default_rng(3)), str(tmp_path / "t.safetensors"))
    args = ["--model=vit_tiny", f"--checkpoint={tmp_path / 't.safetensors'}", f"--out={tmp_path}"]
    ok = cli("attnzoo.convert", *args, "--set=num_heads=2", "--name=vit_tiny.t", devices=1)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "vit_tiny.t.safetensors").exists() and (
        tmp_path / "vit_tiny.t.json"
    ).exists()
    bad = cli(
        "attnzoo.convert", *args[:1], f"--checkpoint={tmp_path / 'nope.pth'}", args[2], devices=1
    )
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0
    assert "no checkpoint file at" in bad.stderr
