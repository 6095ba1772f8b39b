"""Official ViT checkpoints -> attnzoo `ViT` params (every tensor mapped by name).

timm (`VisionTransformer` state dict, `.safetensors`/`.pth`): conv patch embedding
`[D, C, p, p]`, fused `qkv` `[3D, D]` rows ordered (q|k|v, head, head_dim), PyTorch
`[out, in]` linears, a class token whose position embedding (row 0 of `pos_embed`) is
folded into it (attnzoo adds position embeddings to the patch tokens only; adding a
constant to a constant token is the same model), exact GELU. Class-token models only:
timm's `fc_norm` (norm after pooling) has no attnzoo counterpart.

big_vision (`.npz`, flax names `Transformer/encoderblock_i/...`, scanned or not): kernels
already in attnzoo's layout; `pool_type` "tok" (a `cls` param) or "gap"; tanh GELU. MAP
heads and `pre_logits` are refused as leftovers.
"""

import math

import numpy as np

from attnzoo.zoo.state_dict import (
    StateDict,
    patch_conv,
    register_converter,
    timm_attention,
    torch_linear,
)
from attnzoo.zoo.vision.vit import PRESETS


def _grid(n: int) -> int:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"position table of {n} tokens is not a square grid")
    return side


@register_converter("vit_")
def convert_vit(arch: str, sd: StateDict, *, num_heads: int | None = None):
    """`(kwargs, params)` of a timm or big_vision ViT checkpoint for architecture `arch`;
    `num_heads` defaults to the preset's (timm checkpoints do not record it)."""
    if sd.has("patch_embed.proj.weight"):
        return convert_timm_vit(sd, num_heads or PRESETS[arch.removeprefix("vit_")]["num_heads"])
    if sd.has("embedding/kernel"):
        return convert_big_vision_vit(sd)
    raise ValueError("not a timm or big_vision ViT checkpoint (no patch embedding found)")


def convert_timm_vit(sd: StateDict, num_heads: int):
    width, c, p, _ = sd.shape("patch_embed.proj.weight")
    depth, mlp_dim = sd.count("blocks."), sd.shape("blocks.0.mlp.fc1.weight")[0]
    if sd.has("fc_norm.weight"):
        raise ValueError("timm ViTs with fc_norm (pooling before the norm) are not ported")
    if width % num_heads:
        raise ValueError(f"width {width} is not divisible by num_heads={num_heads}")
    params = dict(zip(("stem/proj/kernel", "stem/proj/bias"), patch_conv(sd, "patch_embed.proj")))
    pos = sd.take("pos_embed")[0]  # [1 + n, D] (class token first) or [n, D]
    cls = sd.take("cls_token", (1, 1, width))
    if math.isqrt(len(pos) - 1) ** 2 == len(pos) - 1:
        cls, pos = cls + pos[None, :1], pos[1:]
    params.update(cls=cls, posemb=pos)
    for i in range(depth):
        b, o = f"blocks.{i}.", f"blocks/{i}/"
        for norm in ("norm1", "norm2"):
            params[f"{o}{norm}/scale"] = sd.take(f"{b}{norm}.weight", (width,))
            params[f"{o}{norm}/bias"] = sd.take(f"{b}{norm}.bias", (width,))
        for name, value in timm_attention(sd, f"{b}attn", width, num_heads).items():
            params[f"{o}attn/{name}"] = value
        for fc, shape in (("fc1", (mlp_dim, width)), ("fc2", (width, mlp_dim))):
            params[f"{o}mlp/{fc}/kernel"], params[f"{o}mlp/{fc}/bias"] = torch_linear(
                sd, f"{b}mlp.{fc}", *shape
            )
    params["norm/scale"] = sd.take("norm.weight", (width,))
    params["norm/bias"] = sd.take("norm.bias", (width,))
    num_classes = sd.shape("head.weight")[0] if sd.has("head.weight") else 0
    if num_classes:
        params["head/kernel"], params["head/bias"] = torch_linear(sd, "head", num_classes, width)
    side = _grid(len(pos))
    kwargs = dict(
        num_classes=num_classes,
        image_size=[side * p, side * p],
        in_channels=c,
        patch_size=p,
        width=width,
        depth=depth,
        num_heads=num_heads,
        mlp_dim=mlp_dim,
        pool="tok",
        posemb="learn",
        mlp_activation="gelu_exact",
    )
    return kwargs, params


def convert_big_vision_vit(sd: StateDict):
    p, _, c, width = sd.shape("embedding/kernel")
    scanned = sd.has("Transformer/encoderblock/LayerNorm_0/scale")
    depth = (
        sd.shape("Transformer/encoderblock/LayerNorm_0/scale")[0]
        if scanned
        else sd.count("Transformer/encoderblock_")
    )
    block0 = "Transformer/encoderblock" + ("" if scanned else "_0")
    num_heads = sd.shape(f"{block0}/MultiHeadDotProductAttention_0/query/kernel")[-2]
    mlp_dim = sd.shape(f"{block0}/MlpBlock_0/Dense_0/kernel")[-1]
    stacked = {}

    def block_param(i: int, name: str) -> np.ndarray:
        if not scanned:
            return sd.take(f"Transformer/encoderblock_{i}/{name}")
        if name not in stacked:
            stacked[name] = sd.take(f"Transformer/encoderblock/{name}")
        return stacked[name][i]

    params = {
        "stem/proj/kernel": sd.take("embedding/kernel").reshape(p * p * c, width),
        "stem/proj/bias": sd.take("embedding/bias", (width,)),
        "posemb": sd.take("pos_embedding")[0],
        "norm/scale": sd.take("Transformer/encoder_norm/scale", (width,)),
        "norm/bias": sd.take("Transformer/encoder_norm/bias", (width,)),
    }
    pool = "tok" if sd.has("cls") else "gap"
    if pool == "tok":
        params["cls"] = sd.take("cls", (1, 1, width))
    names = {
        "norm1": "LayerNorm_0",
        "norm2": "LayerNorm_1",
        "mlp/fc1": "MlpBlock_0/Dense_0",
        "mlp/fc2": "MlpBlock_0/Dense_1",
        **{
            f"attn/{n}": f"MultiHeadDotProductAttention_0/{n}"
            for n in ("query", "key", "value", "out")
        },
    }
    for i in range(depth):
        for ours, theirs in names.items():
            leaf = ("scale", "bias") if ours.startswith("norm") else ("kernel", "bias")
            for name in leaf:
                params[f"blocks/{i}/{ours}/{name}"] = block_param(i, f"{theirs}/{name}")
    num_classes = sd.shape("head/kernel")[1] if sd.has("head/kernel") else 0
    if num_classes:
        params["head/kernel"] = sd.take("head/kernel", (width, num_classes))
        params["head/bias"] = sd.take("head/bias", (num_classes,))
    side = _grid(len(params["posemb"]))
    kwargs = dict(
        num_classes=int(num_classes),
        image_size=[side * p, side * p],
        in_channels=int(c),
        patch_size=int(p),
        width=int(width),
        depth=int(depth),
        num_heads=int(num_heads),
        mlp_dim=int(mlp_dim),
        pool=pool,
        posemb="learn",
        mlp_activation="gelu",
    )
    return kwargs, params


def _conv(sd: StateDict, key: str, out_dim: int, in_per_group: int, k: int, *, bias=True):
    """PyTorch `Conv2d` `[out, in/groups, k, k]` -> flax `[k, k, in/groups, out]` (+ bias)."""
    kernel = sd.take(f"{key}.weight", (out_dim, in_per_group, k, k)).transpose(2, 3, 1, 0)
    return {"kernel": kernel, **({"bias": sd.take(f"{key}.bias", (out_dim,))} if bias else {})}


def _batch_norm(sd: StateDict, key: str, dim: int) -> dict:
    """PyTorch `BatchNorm2d` -> flax `BatchNorm` (its step counter has no counterpart)."""
    if sd.has(f"{key}.num_batches_tracked"):
        sd.take(f"{key}.num_batches_tracked")
    names = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    return {ours: sd.take(f"{key}.{theirs}", (dim,)) for ours, theirs in names.items()}


def _prefixed(prefix: str, tree: dict) -> dict:
    return {f"{prefix}/{k}": v for k, v in tree.items()}


@register_converter("biformer_")
def convert_biformer(arch: str, sd: StateDict, **options):
    """`(kwargs, params)` of an official BiFormer checkpoint (`models/biformer.py` with the
    legacy `ops/bra_legacy.py` attention, the released ImageNet weights). Routing settings
    the weights do not record (`topks`, `n_win`, `head_dim`, `stem_strides`) come from the
    preset of `arch` or `options`; a stage is full attention (topk -2) exactly when its
    checkpoint has `attn.proj` (AttentionLePE) rather than `attn.wo` (routing)."""
    from attnzoo.zoo.vision.biformer import FULL_ATTENTION
    from attnzoo.zoo.vision.biformer import PRESETS as BIFORMER

    preset = {**BIFORMER.get(arch.removeprefix("biformer_"), {}), **options}
    num_stages = sd.count("stages.")
    depths = [sd.count(f"stages.{i}.") for i in range(num_stages)]
    widths = [sd.shape(f"stages.{i}.0.norm1.weight")[0] for i in range(num_stages)]
    topks = list(preset.get("topks", ()))
    full = [sd.has(f"stages.{i}.0.attn.proj.weight") for i in range(num_stages)]
    if len(topks) != num_stages or any((t == FULL_ATTENTION) != f for t, f in zip(topks, full)):
        raise ValueError(
            f"the checkpoint's {num_stages} stages (full attention: {full}) do not fit "
            f"topks={tuple(topks)}; pass topks=... for this checkpoint"
        )
    in_channels = sd.shape("downsample_layers.0.0.weight")[1]
    hidden = sd.shape("stages.0.0.mlp.0.weight")[0]
    side = sd.shape("stages.0.0.attn.lepe.weight")[-1]
    mid = widths[0] // 2
    params = {
        **_prefixed("stem_conv/conv", _conv(sd, "downsample_layers.0.0", mid, in_channels, 3)),
        **_prefixed("stem_conv/norm", _batch_norm(sd, "downsample_layers.0.1", mid)),
        **_prefixed("stem_out/conv", _conv(sd, "downsample_layers.0.3", widths[0], mid, 3)),
        **_prefixed("stem_out/norm", _batch_norm(sd, "downsample_layers.0.4", widths[0])),
        **_prefixed("norm", _batch_norm(sd, "norm", widths[-1])),
    }
    for i in range(1, num_stages):
        w_in, w = widths[i - 1], widths[i]
        params.update(
            _prefixed(f"downsample/{i - 1}/conv", _conv(sd, f"downsample_layers.{i}.0", w, w_in, 3))
        )
        params.update(
            _prefixed(f"downsample/{i - 1}/norm", _batch_norm(sd, f"downsample_layers.{i}.1", w))
        )
    for i, (depth, w) in enumerate(zip(depths, widths)):
        mlp = hidden * w // widths[0]
        for j in range(depth):
            b, o = f"stages.{i}.{j}.", f"stages/{i}/{j}/"
            params.update(_prefixed(o + "pos_embed", _conv(sd, b + "pos_embed", w, 1, 3)))
            for norm in ("norm1", "norm2"):
                params[f"{o}{norm}/scale"] = sd.take(f"{b}{norm}.weight", (w,))
                params[f"{o}{norm}/bias"] = sd.take(f"{b}{norm}.bias", (w,))
            params.update(_prefixed(o + "attn/lepe", _conv(sd, b + "attn.lepe", w, 1, side)))
            if full[i]:
                params[o + "attn/qkv/kernel"] = sd.take(b + "attn.qkv.weight", (3 * w, w)).T
                params[o + "attn/proj/kernel"], params[o + "attn/proj/bias"] = torch_linear(
                    sd, b + "attn.proj", w, w
                )
            else:  # qk_dim = dim in every released model
                params[o + "attn/qkv/kernel"], params[o + "attn/qkv/bias"] = torch_linear(
                    sd, b + "attn.qkv.qkv", 3 * w, w
                )
                params[o + "attn/out/kernel"], params[o + "attn/out/bias"] = torch_linear(
                    sd, b + "attn.wo", w, w
                )
            params[o + "fc1/kernel"], params[o + "fc1/bias"] = torch_linear(sd, b + "mlp.0", mlp, w)
            params[o + "fc2/kernel"], params[o + "fc2/bias"] = torch_linear(sd, b + "mlp.3", w, mlp)
    num_classes = sd.shape("head.weight")[0] if sd.has("head.weight") else 0
    if num_classes:
        params["head/kernel"], params["head/bias"] = torch_linear(
            sd, "head", num_classes, widths[-1]
        )
    kwargs = dict(
        num_classes=num_classes,
        depths=depths,
        widths=widths,
        topks=topks,
        in_channels=in_channels,
        head_dim=preset.get("head_dim", 32),
        n_win=preset.get("n_win", 7),
        mlp_ratio=hidden // widths[0],
        side_dwconv=side,
        stem_strides=list(preset.get("stem_strides", (2, 2))),
    )
    return kwargs, params
