"""Official Pathformer checkpoints -> attnzoo `Pathformer` params (every tensor by name).

decisionintelligence/pathformer `models/PathFormer.py` state dicts (`checkpoint.pth` of
`run.py`): `start_fc`, `AMS_lists.{l}` (router: `start_linear`, `trend_model.layer`,
`w_gate`, `w_noise`; `experts.{e}`: one `Transformer_Layer` per patch size) and
`projections.0`. The shapes give the input length, horizon, variables, d_model, d_ff and
every patch size (`intra_Linear` maps the patch count to the input length). Not recorded,
so options: `k` (experts per sample), `residual` (`--residual_connection`), `revin`
(RevIN has no affine params); defaults are the official ETTh1 recipe's (3, True, True).

Tensors that the official forward never reads are checked and dropped: the router's `mean`
/ `std` buffers (the constants 0 and 1 of its normal CDF), `end_MLP` (built, never called),
the inter-patch attention's `sdp_attn.scale` (head_dim^-0.5, not learned without `lsa`), and
the batch norms `norm_attn` / `norm_ffn`, only when never used (`num_batches_tracked` 0:
trained with `--batch_norm 0`, the only setting attnzoo's Pathformer implements).
"""

import numpy as np

from attnzoo.zoo.state_dict import StateDict, register_converter, torch_linear


@register_converter("pathformer")
def convert_pathformer(arch: str, sd: StateDict, *, k=3, residual=True, revin=True):
    d_model = sd.shape("start_fc.weight")[0]
    channels = sd.shape("AMS_lists.0.start_linear.weight")[1]
    num_experts, input_len = sd.shape("AMS_lists.0.w_gate.weight")
    horizon = sd.shape("projections.0.weight")[0]
    d_ff = sd.shape("AMS_lists.0.experts.0.ff.0.weight")[0]
    kernel, bias = torch_linear(sd, "start_fc", d_model, 1)
    params = {"embed/kernel": kernel, "embed/bias": bias}
    patch_sizes = []
    for layer in range(sd.count("AMS_lists.")):
        official, ours = f"AMS_lists.{layer}", f"blocks/{layer}"
        params.update(_router(sd, official, ours, num_experts, input_len, channels))
        sizes = []
        for e in range(sd.count(f"{official}.experts.")):
            patches = sd.shape(f"{official}.experts.{e}.intra_Linear.weight")[1]
            if input_len % patches:
                raise ValueError(
                    f"{official}.experts.{e}: {patches} patches do not tile {input_len}"
                )
            sizes.append(input_len // patches)
            expert = _expert(
                sd, f"{official}.experts.{e}", input_len, patches, channels, d_model, d_ff
            )
            params.update({f"{ours}/experts/{e}/{name}": v for name, v in expert.items()})
        patch_sizes.append(sizes)
    kernel, bias = torch_linear(sd, "projections.0", horizon, input_len * d_model)
    params.update({"head/kernel": kernel, "head/bias": bias})
    kwargs = dict(
        input_len=input_len, horizon=horizon, channels=channels, d_model=d_model, d_ff=d_ff,
        patch_sizes=patch_sizes, k=k, residual=residual, revin=revin,
    )  # fmt: skip
    return kwargs, params


def _router(sd: StateDict, official: str, ours: str, experts: int, length: int, channels: int):
    for name, value in (("mean", 0.0), ("std", 1.0)):
        _constant(sd, f"{official}.{name}", value)
    for name in ("fc.weight", "fc.bias"):
        sd.take(f"{official}.end_MLP.{name}")  # never called in the official forward
    out = {}
    for theirs, mine, shape in (
        ("start_linear", "start_linear", (1, channels)),
        (
            "trend_model.layer",
            "trend/mix",
            (sd.shape(f"{official}.trend_model.layer.weight")[0], 1),
        ),
        ("w_gate", "w_gate", (experts, length)),
        ("w_noise", "w_noise", (experts, length)),
    ):
        kernel, bias = torch_linear(sd, f"{official}.{theirs}", *shape)
        out.update({f"{ours}/router/{mine}/kernel": kernel, f"{ours}/router/{mine}/bias": bias})
    return out


def _expert(sd: StateDict, key: str, length: int, patches: int, channels: int, d: int, d_ff: int):
    """One `Transformer_Layer` -> `DualAttentionExpert` params (paths relative to it)."""
    size = length // patches
    inter = d * size
    out = {
        "intra/node_embedding": sd.take(
            f"{key}.intra_embeddings", (patches, 1, 1, channels, 16)
        ).reshape(patches, channels, 16),
        "inter/posemb": sd.take(f"{key}.W_pos", (patches, inter)),
    }
    queries = [torch_linear(sd, f"{key}.embeddings_generator.{i}.0", d, 16) for i in range(patches)]
    out["intra/query_kernel"] = np.stack([kernel for kernel, _ in queries])
    out["intra/query_bias"] = np.stack([bias for _, bias in queries])
    generator = f"{key}.weights_generator_distinct"
    out["intra/kv_weights/memory"] = sd.take(f"{generator}.memory", (channels, 16))
    for i, (mine, shape) in enumerate((("fc1", (64, 16)), ("fc2", (64, 64)), ("fc3", (100, 64)))):
        kernel, bias = torch_linear(sd, f"{generator}.generator.{2 * i}", *shape)
        out.update(
            {f"intra/kv_weights/{mine}/kernel": kernel, f"intra/kv_weights/{mine}/bias": bias}
        )
    for mine, theirs, shape in (("p", "P", (d, 10)), ("q", "Q", (10, d)), ("b", "B", (100, d))):
        out[f"intra/kv_weights/{mine}"] = np.stack(
            [sd.take(f"{generator}.{theirs}.{i}", shape) for i in range(2)]
        )
    shared = f"{key}.weights_generator_shared"
    out["intra/shared_kernel"] = np.stack([sd.take(f"{shared}.P.{i}", (d, d)) for i in range(2)])
    out["intra/shared_bias"] = np.stack([sd.take(f"{shared}.B.{i}", (1, d))[0] for i in range(2)])
    kernel, bias = torch_linear(sd, f"{key}.intra_Linear", length, patches)
    out.update({"intra/to_steps/kernel": kernel, "intra/to_steps/bias": bias})
    linears = {
        "inter/embed": "emb_linear",
        "inter/query": "inter_patch_attention.W_Q",
        "inter/key": "inter_patch_attention.W_K",
        "inter/value": "inter_patch_attention.W_V",
        "inter/out": "inter_patch_attention.to_out.0",
    }
    for mine, theirs in linears.items():
        kernel, bias = torch_linear(sd, f"{key}.{theirs}", inter, inter)
        out.update({f"{mine}/kernel": kernel, f"{mine}/bias": bias})
    _constant(sd, f"{key}.inter_patch_attention.sdp_attn.scale", (inter // d) ** -0.5)
    for norm in ("norm_attn", "norm_ffn"):
        _unused_batch_norm(sd, f"{key}.{norm}.1")
    for mine, theirs, shape in (("ff1", "ff.0", (d_ff, d)), ("ff2", "ff.3", (d, d_ff))):
        kernel, bias = torch_linear(sd, f"{key}.{theirs}", *shape)
        out.update({f"{mine}/kernel": kernel, f"{mine}/bias": bias})
    return out


def _constant(sd: StateDict, key: str, value: float) -> None:
    """Takes a tensor the official forward uses only as the constant `value`."""
    got = sd.take(key)
    if not np.allclose(got, value, rtol=1e-6):
        raise ValueError(
            f"official tensor {key} is {got.ravel()[:4]}, expected the constant {value}"
        )


def _unused_batch_norm(sd: StateDict, key: str) -> None:
    if int(sd.take(f"{key}.num_batches_tracked")) != 0:
        raise ValueError(
            f"{key} was trained (--batch_norm 1): attnzoo's Pathformer has no batch norms"
        )
    for name in ("weight", "bias", "running_mean", "running_var"):
        sd.take(f"{key}.{name}")
