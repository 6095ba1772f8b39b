"""Official DiT checkpoints (facebookresearch/DiT `models.py`) -> attnzoo `DiT` params.

The released `DiT-XL-2-256x256.pt` and `DiT-XL-2-512x512.pt` are plain state dicts of the EMA
weights (`.pt`, read without PyTorch; `train.py`'s own checkpoints give their `ema` entry).
Everything the weights record is read from them: depth, hidden size, patch size, input
size (the grid of `pos_embed` times the patch), in/out channels (`learn_sigma` when the
final linear gives 2C channels per pixel), MLP ratio, number of label-table rows.

Not recorded: `num_heads` (default: the preset of the named architecture, `dit_xl2` -> 16)
and whether the last label-table row is the classifier-free-guidance null class. That
depends on `class_dropout_prob` (default 0.1 as in the official code and training, so the
table's `num_classes + 1` rows hold `num_classes` labels and the null row; pass
`class_dropout_prob=0` for a table without a null row).

Mapping (PyTorch `Linear` `[out, in]` -> kernel `[in, out]`):
- `x_embedder.proj` conv `[D, C, p, p]` -> `x_embedder/proj/kernel` `[p*p*C, D]`, rows ordered
  (p_h, p_w, c) like attnzoo's NHWC `patchify`;
- `pos_embed` `[1, T, D]`: frozen, not a param here (attnzoo recomputes the same 2-D sin-cos
  table); consumed after checking it equals attnzoo's table, so a checkpoint with another
  table is refused rather than silently changed;
- `t_embedder.mlp.{0,2}` -> `t_embedder/fc{1,2}`; `y_embedder.embedding_table` ->
  `y_embedder/table`;
- per block: fused `attn.qkv` `[3D, D]` with rows ordered (q|k|v, head, head_dim), as timm's
  `Attention` splits them -> `attn/{query,key,value}/kernel` `[D, h, d]` and biases `[h, d]`;
  `attn.proj` -> `attn/out/kernel` `[h, d, D]`; `mlp.fc{1,2}` -> `fc{1,2}`;
  `adaLN_modulation.1` -> `ada_ln` (chunk order shift, scale, gate x msa, mlp kept as is);
- `final_layer.linear` -> `final_layer/linear` (output features ordered (p_h, p_w, c) in both
  codes' unpatchify: no permutation), `final_layer.adaLN_modulation.1` ->
  `final_layer/ada_ln`. LayerNorms have no affine params.
"""

import math

import numpy as np

from attnzoo.layers.posemb import sincos_2d
from attnzoo.zoo.diffusion.dit import FREQUENCY_DIM, PRESETS
from attnzoo.zoo.state_dict import (
    StateDict,
    patch_conv,
    register_converter,
    timm_attention,
    torch_linear,
)


def _check_pos_embed(table: np.ndarray, grid: int, width: int) -> None:
    ours = sincos_2d(grid, grid, width)
    err = float(np.abs(table - ours).max())
    if err > 1e-4:
        raise ValueError(
            f"official pos_embed differs from the fixed 2-D sin-cos table by {err:.3g}: "
            "attnzoo's DiT does not load a position table"
        )


@register_converter("dit_")
def convert_dit(
    arch: str, sd: StateDict, *, num_heads: int | None = None, class_dropout_prob: float = 0.1
):
    """`(kwargs, params)` of an official DiT checkpoint for architecture `arch`; `num_heads`
    defaults to the preset's, `class_dropout_prob > 0` means the label table ends with the
    null class (see the module docstring)."""
    num_heads = num_heads or PRESETS[arch.removeprefix("dit_")]["num_heads"]
    width, c, p, _ = sd.shape("x_embedder.proj.weight")
    depth, mlp_dim = sd.count("blocks."), sd.shape("blocks.0.mlp.fc1.weight")[0]
    if width % num_heads:
        raise ValueError(f"hidden size {width} is not divisible by num_heads={num_heads}")
    tokens = sd.shape("pos_embed")[1]
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ValueError(f"pos_embed of {tokens} tokens is not a square grid")
    _check_pos_embed(sd.take("pos_embed", (1, tokens, width))[0], grid, width)
    out_dim = sd.shape("final_layer.linear.weight")[0]
    if out_dim not in (p * p * c, 2 * p * p * c):
        raise ValueError(f"final linear of {out_dim} outputs fits neither C={c} nor 2C per pixel")
    rows = sd.shape("y_embedder.embedding_table.weight")[0]
    num_classes = rows - int(class_dropout_prob > 0)

    params = {
        "y_embedder/table": sd.take("y_embedder.embedding_table.weight", (rows, width)),
    }
    params["x_embedder/proj/kernel"], params["x_embedder/proj/bias"] = patch_conv(
        sd, "x_embedder.proj"
    )
    params["t_embedder/fc1/kernel"], params["t_embedder/fc1/bias"] = torch_linear(
        sd, "t_embedder.mlp.0", width, FREQUENCY_DIM
    )
    params["t_embedder/fc2/kernel"], params["t_embedder/fc2/bias"] = torch_linear(
        sd, "t_embedder.mlp.2", width, width
    )
    for i in range(depth):
        b, o = f"blocks.{i}.", f"blocks/{i}/"
        for name, value in timm_attention(sd, f"{b}attn", width, num_heads).items():
            params[f"{o}attn/{name}"] = value
        for fc, shape in (("fc1", (mlp_dim, width)), ("fc2", (width, mlp_dim))):
            params[f"{o}{fc}/kernel"], params[f"{o}{fc}/bias"] = torch_linear(
                sd, f"{b}mlp.{fc}", *shape
            )
        params[f"{o}ada_ln/kernel"], params[f"{o}ada_ln/bias"] = torch_linear(
            sd, f"{b}adaLN_modulation.1", 6 * width, width
        )
    f, o = "final_layer.", "final_layer/"
    params[f"{o}linear/kernel"], params[f"{o}linear/bias"] = torch_linear(
        sd, f"{f}linear", out_dim, width
    )
    params[f"{o}ada_ln/kernel"], params[f"{o}ada_ln/bias"] = torch_linear(
        sd, f"{f}adaLN_modulation.1", 2 * width, width
    )
    kwargs = dict(
        input_size=grid * p,
        patch_size=p,
        in_channels=c,
        hidden_size=width,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_dim / width,
        class_dropout_prob=class_dropout_prob,
        num_classes=num_classes,
        learn_sigma=out_dim == 2 * p * p * c,
    )
    return kwargs, params
