"""An official BiFormer checkpoint (synthetic: official names and shapes) converts with parity.

The reference is the official forward (`models/biformer.py`, `models/_common.py`
AttentionLePE, `ops/bra_legacy.py` routing) written in numpy on NCHW tensors: region
means, top-k regions by `(q_r * scale) k_r^T` with `scale = qk_dim^-0.5` (also for the
token attention), LePE on V at full resolution, BatchNorm with running statistics.
"""

import numpy as np
import pytest
from safetensors.numpy import save_file

from attnzoo.convert import convert
from attnzoo.zoo.registry import create_model
from attnzoo.zoo.release import write_release
from tests.numpy_reference import gelu_exact, layer_norm, linear, softmax

WIDTHS, TOPKS, N_WIN, HEAD_DIM, MLP_RATIO, IN, SIZE, CLASSES = (16, 32), (2, -2), 2, 8, 3, 3, 16, 5
OPTIONS = dict(topks=TOPKS, n_win=N_WIN, head_dim=HEAD_DIM, stem_strides=(2, 2))


def official_state(rng) -> dict[str, np.ndarray]:
    sd = {}

    def conv(key, o, i, k):
        sd[f"{key}.weight"] = rng.normal(size=(o, i, k, k)) * (i * k * k) ** -0.5
        sd[f"{key}.bias"] = 0.1 * rng.normal(size=(o,))

    def bn(key, c):
        sd[f"{key}.weight"] = 1 + 0.1 * rng.normal(size=(c,))
        sd[f"{key}.bias"] = 0.1 * rng.normal(size=(c,))
        sd[f"{key}.running_mean"] = 0.1 * rng.normal(size=(c,))
        sd[f"{key}.running_var"] = rng.uniform(0.5, 1.5, size=(c,))
        sd[f"{key}.num_batches_tracked"] = np.array(7)

    def linear(key, o, i, bias=True):
        sd[f"{key}.weight"] = rng.normal(size=(o, i)) * i**-0.5
        if bias:
            sd[f"{key}.bias"] = 0.1 * rng.normal(size=(o,))

    conv("downsample_layers.0.0", WIDTHS[0] // 2, IN, 3)
    bn("downsample_layers.0.1", WIDTHS[0] // 2)
    conv("downsample_layers.0.3", WIDTHS[0], WIDTHS[0] // 2, 3)
    bn("downsample_layers.0.4", WIDTHS[0])
    conv("downsample_layers.1.0", WIDTHS[1], WIDTHS[0], 3)
    bn("downsample_layers.1.1", WIDTHS[1])
    for i, (w, topk) in enumerate(zip(WIDTHS, TOPKS)):
        b = f"stages.{i}.0."
        conv(b + "pos_embed", w, 1, 3)
        for norm in ("norm1", "norm2"):
            sd[f"{b}{norm}.weight"] = 1 + 0.1 * rng.normal(size=(w,))
            sd[f"{b}{norm}.bias"] = 0.1 * rng.normal(size=(w,))
        conv(b + "attn.lepe", w, 1, 5)
        if topk == -2:
            linear(b + "attn.qkv", 3 * w, w, bias=False)
            linear(b + "attn.proj", w, w)
        else:
            linear(b + "attn.qkv.qkv", 3 * w, w)
            linear(b + "attn.wo", w, w)
        linear(b + "mlp.0", MLP_RATIO * w, w)
        linear(b + "mlp.3", w, MLP_RATIO * w)
    bn("norm", WIDTHS[-1])
    linear("head", CLASSES, WIDTHS[-1])
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in sd.items()}


def conv2d(x, w, b, stride=1, groups=1):
    """PyTorch `Conv2d(padding=k // 2)` on NCHW `x`, weight `[out, in/groups, k, k]`."""
    n, _, h, wd = x.shape
    o, ig, k, _ = w.shape
    p, og = k // 2, o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - k) // stride + 1, (wd + 2 * p - k) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for g in range(groups):
        xs = xp[:, g * ig : (g + 1) * ig]
        for dy in range(k):
            for dx in range(k):
                patch = xs[
                    :,
                    :,
                    dy : dy + stride * (ho - 1) + 1 : stride,
                    dx : dx + stride * (wo - 1) + 1 : stride,
                ]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "nihw,oi->nohw", patch, w[g * og : (g + 1) * og, :, dy, dx]
                )
    return out + b[None, :, None, None]


def batch_norm(x, sd, key):
    inv = sd[f"{key}.weight"] / np.sqrt(sd[f"{key}.running_var"] + 1e-5)
    return (x - sd[f"{key}.running_mean"][None, :, None, None]) * inv[None, :, None, None] + sd[
        f"{key}.bias"
    ][None, :, None, None]


def routed_attention(x, sd, b, topk, dim):
    """`ops/bra_legacy.py` BiLevelRoutingAttention on NHWC `x` (qk_dim = dim)."""
    n, h, w, _ = x.shape
    s, heads = N_WIN, dim // HEAD_DIM
    hr, wr = h // s, w // s
    regions = (
        x.reshape(n, s, hr, s, wr, dim).transpose(0, 1, 3, 2, 4, 5).reshape(n, s * s, hr * wr, dim)
    )
    qkv = linear(regions, sd, b + "attn.qkv.qkv")
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
    scale = dim**-0.5
    logits = (q.mean(2) * scale) @ k.mean(2).transpose(0, 2, 1)  # [n, p2, p2]
    idx = np.argsort(-logits, axis=-1)[..., :topk]
    out = np.zeros_like(q)
    for bi in range(n):
        for r in range(s * s):
            keys = k[bi, idx[bi, r]].reshape(-1, heads, dim // heads)  # [topk*w2, m, c]
            vals = v[bi, idx[bi, r]].reshape(-1, heads, dim // heads)
            qr = q[bi, r].reshape(-1, heads, dim // heads)
            att = softmax(np.einsum("qmc,kmc->mqk", qr * scale, keys))
            out[bi, r] = np.einsum("mqk,kmc->qmc", att, vals).reshape(-1, dim)
    to_map = lambda t: (
        t.reshape(n, s, s, hr, wr, dim).transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, dim)
    )
    v_map = to_map(v).transpose(0, 3, 1, 2)
    lepe = conv2d(
        v_map, sd[b + "attn.lepe.weight"], sd[b + "attn.lepe.bias"], groups=dim
    ).transpose(0, 2, 3, 1)
    return linear(to_map(out) + lepe, sd, b + "attn.wo")


def full_attention(x, sd, b, dim):
    """`_common.py` AttentionLePE (8 heads, no qkv bias, LePE on the normed input)."""
    n, h, w, _ = x.shape
    heads = 8
    qkv = linear(x.reshape(n, h * w, dim), sd, b + "attn.qkv").reshape(
        n, h * w, 3, heads, dim // heads
    )
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    att = softmax(np.einsum("nqmc,nkmc->nmqk", q, k) * (dim // heads) ** -0.5)
    out = np.einsum("nmqk,nkmc->nqmc", att, v).reshape(n, h, w, dim)
    lepe = conv2d(
        x.transpose(0, 3, 1, 2), sd[b + "attn.lepe.weight"], sd[b + "attn.lepe.bias"], groups=dim
    )
    return linear(out + lepe.transpose(0, 2, 3, 1), sd, b + "attn.proj")


def official_forward(sd, x):
    x = conv2d(x, sd["downsample_layers.0.0.weight"], sd["downsample_layers.0.0.bias"], stride=2)
    x = gelu_exact(batch_norm(x, sd, "downsample_layers.0.1"))
    x = conv2d(x, sd["downsample_layers.0.3.weight"], sd["downsample_layers.0.3.bias"], stride=2)
    x = batch_norm(x, sd, "downsample_layers.0.4")
    for i, (dim, topk) in enumerate(zip(WIDTHS, TOPKS)):
        if i:
            d = f"downsample_layers.{i}."
            x = batch_norm(conv2d(x, sd[d + "0.weight"], sd[d + "0.bias"], stride=2), sd, d + "1")
        b = f"stages.{i}.0."
        x = x + conv2d(x, sd[b + "pos_embed.weight"], sd[b + "pos_embed.bias"], groups=dim)
        x = x.transpose(0, 2, 3, 1)
        h = layer_norm(x, sd[b + "norm1.weight"], sd[b + "norm1.bias"])
        x = x + (
            full_attention(h, sd, b, dim) if topk == -2 else routed_attention(h, sd, b, topk, dim)
        )
        h = layer_norm(x, sd[b + "norm2.weight"], sd[b + "norm2.bias"])
        x = x + linear(gelu_exact(linear(h, sd, b + "mlp.0")), sd, b + "mlp.3")
        x = x.transpose(0, 3, 1, 2)
    x = batch_norm(x, sd, "norm").mean((2, 3))
    return linear(x, sd, "head")


def test_biformer_matches_the_official_forward(tmp_path):
    rng = np.random.default_rng(0)
    sd = official_state(rng)
    save_file(sd, str(tmp_path / "biformer.safetensors"))
    spec, params = convert("biformer_tiny", str(tmp_path / "biformer.safetensors"), **OPTIONS)
    assert spec["kwargs"]["depths"] == [1, 1] and spec["kwargs"]["mlp_ratio"] == MLP_RATIO
    record = write_release(params, spec, str(tmp_path), "biformer_tiny.test")
    model = create_model("biformer_tiny", pretrained=str(tmp_path / record["file"]))
    model.eval()
    images = rng.normal(size=(2, SIZE, SIZE, IN)).astype(np.float32)
    expected = official_forward(sd, images.transpose(0, 3, 1, 2).astype(np.float64))
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-3, atol=1e-3)


def test_biformer_stage_layout_must_fit_the_routing_settings(tmp_path):
    save_file(official_state(np.random.default_rng(1)), str(tmp_path / "b.safetensors"))
    with pytest.raises(ValueError, match="do not fit topks"):
        convert("biformer_tiny", str(tmp_path / "b.safetensors"), **{**OPTIONS, "topks": (2, 2)})
