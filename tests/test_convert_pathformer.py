"""Official Pathformer state dict -> attnzoo Pathformer: outputs equal a numpy forward
written from the official `PathFormer.py`, `AMS.py`, `Layer.py` and `utils/Other.py`
(evaluation mode: no noise, no dropout; its quirks kept: experts mixed as the log of the
gate-weighted sum of their exponentials, the inter-patch output reshaped to `[b, T, N, d]`
without a transpose)."""

import math

import numpy as np
import pytest
from safetensors.numpy import save_file

import attnzoo
from attnzoo.convert import convert
from attnzoo.zoo.release import write_release
from tests.numpy_reference import gelu_exact, linear, softmax

L, H, N, D, FF = 16, 4, 3, 4, 8
PATCHES = [[4, 8, 2], [8, 16, 4]]  # two AMS layers of three experts, k = 2 of them


def official_state_dict(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sd = {}

    def t(name, *shape, scale=0.4):
        sd[name] = (scale * rng.normal(size=shape)).astype(np.float32)

    def linear(name, out_dim, in_dim, scale=0.4):
        t(f"{name}.weight", out_dim, in_dim, scale=scale)
        t(f"{name}.bias", out_dim, scale=scale)

    linear("start_fc", D, 1)
    for layer, sizes in enumerate(PATCHES):
        a = f"AMS_lists.{layer}"
        sd[f"{a}.mean"], sd[f"{a}.std"] = np.zeros(1, np.float32), np.ones(1, np.float32)
        linear(f"{a}.start_linear", 1, N)
        linear(f"{a}.trend_model.layer", 3, 1)
        linear(f"{a}.w_gate", len(sizes), L)
        linear(f"{a}.w_noise", len(sizes), L)
        t(f"{a}.end_MLP.fc.weight", L, L, 1, 1)
        t(f"{a}.end_MLP.fc.bias", L)
        for e, size in enumerate(sizes):
            x, n, inter = f"{a}.experts.{e}", L // size, D * size
            t(f"{x}.intra_embeddings", n, 1, 1, N, 16)
            t(f"{x}.W_pos", n, inter)
            for i in range(n):
                linear(f"{x}.embeddings_generator.{i}.0", D, 16)
            g = f"{x}.weights_generator_distinct"
            t(f"{g}.memory", N, 16)
            linear(f"{g}.generator.0", 64, 16)
            linear(f"{g}.generator.2", 64, 64)
            linear(f"{g}.generator.4", 100, 64, scale=0.1)
            for i in range(2):
                t(f"{g}.P.{i}", D, 10, scale=0.3)
                t(f"{g}.Q.{i}", 10, D, scale=0.3)
                t(f"{g}.B.{i}", 100, D, scale=0.1)
                t(f"{x}.weights_generator_shared.P.{i}", D, D)
                t(f"{x}.weights_generator_shared.B.{i}", 1, D)
            linear(f"{x}.intra_Linear", L, n)
            linear(f"{x}.emb_linear", inter, inter, scale=0.2)
            for w in ("W_Q", "W_K", "W_V", "to_out.0"):
                linear(f"{x}.inter_patch_attention.{w}", inter, inter, scale=0.2)
            sd[f"{x}.inter_patch_attention.sdp_attn.scale"] = np.array(size**-0.5, np.float32)
            for norm in ("norm_attn", "norm_ffn"):
                b = f"{x}.{norm}.1"
                sd[f"{b}.weight"], sd[f"{b}.bias"] = np.ones(D, np.float32), np.zeros(D, np.float32)
                sd[f"{b}.running_mean"] = np.zeros(D, np.float32)
                sd[f"{b}.running_var"] = np.ones(D, np.float32)
                sd[f"{b}.num_batches_tracked"] = np.array(0, np.int64)
            linear(f"{x}.ff.0", FF, D)
            linear(f"{x}.ff.3", D, FF)
    linear("projections.0", H, L * D)
    return sd


# ----------------------------------------------------------- the official forward, numpy


def moving_average(x, k):  # x [b, t, n]; replicate padding as `moving_avg`
    front, end = k - 1 - (k - 1) // 2, (k - 1) // 2
    padded = np.concatenate([x[:, :1].repeat(front, 1), x, x[:, -1:].repeat(end, 1)], 1)
    return np.stack([padded[:, i : i + k].mean(1) for i in range(x.shape[1])], 1)


def seasonality(x, top=3):  # `FourierLayer(pred_len=0, k=3)`; x [b, t, n]
    t = x.shape[1]
    spectrum = np.fft.rfft(x, axis=1)[:, 1 : -1 if t % 2 == 0 else None]
    freqs = np.fft.rfftfreq(t)[1 : -1 if t % 2 == 0 else None]
    out = np.zeros_like(x)
    steps = np.arange(t)
    for b in range(x.shape[0]):
        for n in range(x.shape[2]):
            for j in np.argsort(-np.abs(spectrum[b, :, n]), kind="stable")[:top]:
                c = spectrum[b, j, n]  # with its conjugate: twice the cosine
                out[b, :, n] += (
                    2 * np.abs(c) / t * np.cos(2 * np.pi * freqs[j] * steps + np.angle(c))
                )
    return out


def gates(sd, a, x, k):  # x [b, t, n, d] -> [b, E] (eval: clean logits)
    v = x[..., 0]
    mix = softmax(linear(v[..., None], sd, f"{a}.trend_model.layer"))  # [b, t, n, 3]
    trend = (np.stack([moving_average(v, w) for w in (4, 8, 12)], -1) * mix).sum(-1)
    series = v + seasonality(v) + trend
    logits = linear(linear(series, sd, f"{a}.start_linear")[..., 0], sd, f"{a}.w_gate")
    out = np.zeros_like(logits)
    for b, row in enumerate(logits):
        top = np.argsort(-row, kind="stable")[:k]
        out[b, top] = softmax(row[top])
    return out


def expert(sd, x_key, x, size):
    b = x.shape[0]
    n, inter = L // size, D * size
    g = f"{x_key}.weights_generator_distinct"
    memory = np.tanh(linear(sd[f"{g}.memory"], sd, f"{g}.generator.0"))
    memory = linear(
        np.tanh(linear(memory, sd, f"{g}.generator.2")), sd, f"{g}.generator.4"
    )  # [N, 100]
    kv = [
        (sd[f"{g}.P.{i}"] @ memory.reshape(N, 10, 10) @ sd[f"{g}.Q.{i}"], memory @ sd[f"{g}.B.{i}"])
        for i in range(2)
    ]  # ([N, d, d], [N, d]) for keys, values
    shared = f"{x_key}.weights_generator_shared"
    hs = D // 2
    intra = []
    for i in range(n):
        query = linear(
            sd[f"{x_key}.intra_embeddings"][i, 0, 0], sd, f"{x_key}.embeddings_generator.{i}.0"
        )
        tokens = np.concatenate(
            [np.broadcast_to(query, (b, 1, N, D)), x[:, i * size : (i + 1) * size]], 1
        )
        keys, values = (np.einsum("bsnd,nde->bsne", tokens, w) + bias for w, bias in kv)
        heads = []
        for h in range(2):
            part = slice(h * hs, (h + 1) * hs)
            logits = np.einsum("nd,bsnd->bns", query[:, part], keys[..., part]) / math.sqrt(hs)
            heads.append(np.einsum("bns,bsnd->bnd", softmax(logits), values[..., part]))
        y = np.concatenate(heads, -1)  # [b, N, d]
        y = np.maximum(y @ sd[f"{shared}.P.0"] + sd[f"{shared}.B.0"], 0)
        intra.append(y @ sd[f"{shared}.P.1"] + sd[f"{shared}.B.1"])
    intra = np.stack(intra, -1)  # [b, N, d, n]
    intra = linear(intra, sd, f"{x_key}.intra_Linear").transpose(0, 3, 1, 2)  # [b, T, N, d]

    patches = x.reshape(b, n, size, N, D).transpose(0, 3, 1, 4, 2).reshape(b * N, n, inter)
    h = linear(patches, sd, f"{x_key}.emb_linear") + sd[f"{x_key}.W_pos"]
    att = f"{x_key}.inter_patch_attention"
    q, k, v = (
        linear(h, sd, f"{att}.{w}").reshape(b * N, n, D, size) for w in ("W_Q", "W_K", "W_V")
    )
    weights = softmax(np.einsum("bqhd,bkhd->bhqk", q, k) * size**-0.5)
    inter_out = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b * N, n, inter)
    inter_out = linear(inter_out, sd, f"{att}.to_out.0").reshape(b, L, N, D)  # the plain reshape

    out = x + intra + inter_out
    hidden = gelu_exact(linear(out, sd, f"{x_key}.ff.0"))
    return linear(hidden, sd, f"{x_key}.ff.3") + out


def official_forward(sd, series, *, k, residual):
    mean = series.mean(1, keepdims=True)
    std = np.sqrt(series.var(1, keepdims=True) + 1e-5)
    x = linear(((series - mean) / std)[..., None], sd, "start_fc")  # [b, T, N, d]
    for layer, sizes in enumerate(PATCHES):
        a = f"AMS_lists.{layer}"
        g = gates(sd, a, x, k)
        outs = [expert(sd, f"{a}.experts.{e}", x, s) for e, s in enumerate(sizes)]
        # `SparseDispatcher.combine`: log of the gate-weighted sum of exp(expert outputs)
        out = np.log(sum(g[:, e, None, None, None] * np.exp(o) for e, o in enumerate(outs)))
        x = out + x if residual else out
    y = linear(x.transpose(0, 2, 1, 3).reshape(len(x), N, L * D), sd, "projections.0")
    return y.transpose(0, 2, 1) * std + mean


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("residual", [True, False])
def test_converted_pathformer_matches_the_official_forward(tmp_path, residual):
    sd = official_state_dict()
    path = str(tmp_path / "checkpoint.safetensors")
    save_file(sd, path)
    spec, params = convert("pathformer", path, k=2, residual=residual)
    assert spec["kwargs"]["patch_sizes"] == PATCHES
    write_release(params, spec, str(tmp_path), "pathformer.official")
    model = attnzoo.create_model(
        "pathformer", pretrained=str(tmp_path / "pathformer.official.safetensors")
    )
    model.eval()
    series = np.random.default_rng(1).normal(size=(3, L, N)).astype(np.float32) * 2 + 1
    expected = official_forward(
        {k: v.astype(np.float64) for k, v in sd.items()},
        series.astype(np.float64),
        k=2,
        residual=residual,
    )
    got = model(series)
    got = np.asarray(got[0] if isinstance(got, tuple) else got)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"AMS_lists.0.experts.1.norm_ffn.1.num_batches_tracked": np.array(7)}, "--batch_norm 1"),
        ({"AMS_lists.1.std": np.full(1, 2.0, np.float32)}, "expected the constant 1.0"),
        (
            {"AMS_lists.0.extra": np.zeros(2, np.float32)},
            "no place in this model: AMS_lists.0.extra",
        ),
    ],
)
def test_unsupported_or_leftover_tensors_are_refused(tmp_path, change, message):
    path = str(tmp_path / "checkpoint.safetensors")
    save_file({**official_state_dict(), **change}, path)
    with pytest.raises(ValueError, match=message):
        convert("pathformer", path, k=2)


def test_missing_tensor_is_refused(tmp_path):
    sd = official_state_dict()
    del sd["AMS_lists.1.experts.2.ff.3.bias"]
    path = str(tmp_path / "checkpoint.safetensors")
    save_file(sd, path)
    with pytest.raises(ValueError, match="lacks AMS_lists.1.experts.2.ff.3.bias"):
        convert("pathformer", path, k=2)
