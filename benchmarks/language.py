"""Language family: attention kinds at equal parameters/steps/tokens on tiny-shakespeare,
MoBA against dense causal attention at long context, and train-step FLOP/s.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/language.py \
        [--variants dense diff motif moh moba [dense_8k moba_8k]] [--steps 2000] [--stop_after N] \
        [--minutes 20] [--moba_lengths 8192 16384] --out language.json

(`--variants` with no names runs part (2) only.)

(1) Each variant trains with the real engine step from the same seed, data order and
budget (a schedule of `--steps`, stopped after `--stop_after` steps or when `--minutes`
run out, whichever comes first): dense = `lm_tiny_shakespeare`, diff / moh = the same
config with that attention kind, motif = `lm_motif_tiny_shakespeare` (GDA + PolyNorm +
MuonClip), moba = the dense config with MoBA scaled to this short context (blocks of 32 of
the 256 bytes, own block + top-2 past: at most 3 of 8 blocks; the published 8K setting is 3
of 16); dense_8k / moba_8k = `lm_moba_long` (pydoc text, 8K bytes of context) with dense
causal attention / as it is (MoBA, blocks of 512, top-3), for the 8K loss comparison
(on a CPU: with a smaller batch and schedule through `--override`/`--steps`).
Per variant: parameters, steps, validation loss / bits per byte, training tokens/s (steady
state, compile excluded). Targets: motif below dense; dense < 1.60 validation loss within
20 minutes here; MoBA within 2% of dense.
(2) One attention layer (width 256, 4 heads) at each `--moba_lengths` context: forward +
backward seconds and attention FLOPs of MoBA (block 512, top-3, the published 8K setting)
vs dense causal.
(3) The dense variant's train-step FLOP/s (the step's matmul FLOPs, `common.matmul_flops`,
/ step time) as a fraction of this machine's f32 matmul FLOP/s measured in the same run
(target >= 40%): over the whole training run against the peak measured at the start, and
(`common.step_efficiency`) the median of 5 rounds of (best of 3 matmuls, the fastest and the
median of 10 steps).
Variants whose attention kind is not registered are reported as missing, not skipped
silently. Samples of the best variant are printed at the end.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jax  # noqa: E402
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    machine,
    matmul_peak_flops,
    report,
    step_efficiency,
    step_flops,
)
from flax import nnx  # noqa: E402

from attnzoo.configs import apply_overrides, load_config  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.layers.attention_kinds import ATTENTION_KINDS, attention_kind  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402
from attnzoo.zoo.language.generation import generate  # noqa: E402

MOBA = {"block_size": 512, "top_k": 3}
MOBA_SHORT = {"block_size": 32, "top_k": 3}
VARIANTS = {  # name -> (config, model fields changed, attention kinds it needs)
    "dense": ("lm_tiny_shakespeare", {}, ("dense",)),
    "diff": ("lm_tiny_shakespeare", {"attention": "diff"}, ("diff",)),
    "motif": ("lm_motif_tiny_shakespeare", {}, ("gda",)),
    "moh": ("lm_tiny_shakespeare", {"attention": "moh"}, ("moh",)),
    "moba": (
        "lm_tiny_shakespeare",
        {"attention": "moba", "attention_options": {"moba": MOBA_SHORT}},
        ("moba",),
    ),
    "dense_8k": ("lm_moba_long", {"attention": "dense", "attention_options": {}}, ("dense",)),
    "moba_8k": ("lm_moba_long", {}, ("moba",)),
}
DEFAULT_VARIANTS = ["dense", "diff", "motif", "moh", "moba"]  # the 8K pair only on request
PROMPTS = {"tinyshakespeare": "ROMEO:\n"}
DEFAULT_PROMPT = "The "


def count_params(trainer) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainer.abstract_state["model"]))


def train_variant(name: str, steps: int, stop_after: int, minutes: float, overrides: dict) -> dict:
    config_name, model_fields, _ = VARIANTS[name]
    config = load_config(config_name)
    for key, value in model_fields.items():  # replaced, not merged (attention_options)
        config.model[key] = value
    apply_overrides(config, overrides)
    config.train.steps = steps  # the schedule's length
    with tempfile.TemporaryDirectory() as work:
        trainer = Trainer(config, work)
        data = iter(
            trainer.family.make_dataset("train", train=True, process_index=0, process_count=1)
        )
        state = trainer.init_state()
        batch = next(data)
        state, metrics = trainer.train_step(state, batch)  # compile
        jax.block_until_ready(metrics["loss"])
        start, done = time.perf_counter(), 1
        while done < stop_after and time.perf_counter() - start < 60 * minutes:
            state, metrics = trainer.train_step(state, next(data))
            done += 1
        jax.block_until_ready(metrics["loss"])
        seconds = time.perf_counter() - start
        results = trainer.evaluate(state)
        flops = step_flops(trainer, batch)
        model = trainer.model(state["model"])
        tokenizer = trainer.family.tokenizer
        text = PROMPTS.get(config.data.name, DEFAULT_PROMPT)
        prompt = tokenizer.encode(text)[None]
        tokens, _ = generate(
            model, prompt, max_new_tokens=160, rng=jax.random.key(0), temperature=0.8, top_p=0.95
        )
        tokens_per_step = config.train.batch_size * config.data.context_len
        _, fastest, median = step_efficiency(trainer, state, batch, flops)  # after sampling
    return {
        "params": count_params(trainer),
        "steps": done,
        "val_loss": results["loss"],
        "val_bits_per_byte": results["bits_per_byte"],
        "tokens_per_s": (done - 1) * tokens_per_step / seconds,
        "train_flops_per_s": flops * (done - 1) / seconds,
        "fastest_step_peak_fraction": float(np.median(fastest)),
        "median_step_peak_fraction": float(np.median(median)),
        "step_peak_fraction_rounds": [(round(f, 4), round(m, 4)) for f, m in zip(fastest, median)],
        "train_seconds": seconds,
        "sample": text + tokenizer.decode(tokens[0]),
    }


def attention_seconds(kind: str, length: int, options: dict, repeats: int = 2) -> float:
    """Forward + backward seconds of one attention layer over `length` tokens (batch 1)."""
    with nnx.use_eager_sharding(False):
        layer = attention_kind(kind)(256, 4, rngs=nnx.Rngs(0), **options)
    x = jax.random.normal(jax.random.key(0), (1, length, 256))
    graphdef, params = nnx.split(layer)
    grad = jax.jit(jax.grad(lambda p, x: nnx.merge(graphdef, p)(x).sum(), argnums=(0, 1)))
    jax.block_until_ready(grad(params, x))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(grad(params, x))
        best = min(best, time.perf_counter() - start)
    return best


def attention_flops(length: int, keys_per_query: float, heads: int = 4, dim: int = 64) -> float:
    """Score + value FLOPs of one forward pass: 4 · T · keys per query · h · d."""
    return 4.0 * length * keys_per_query * heads * dim


class Rows(list):
    """The table's rows, each also printed as it is measured (long runs show progress)."""

    def append(self, row) -> None:
        super().append(row)
        print(f"{row[0]}: {row[1]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="*", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=2000, help="the schedule's length")
    parser.add_argument("--stop_after", type=int, default=None, help="steps to train (<= --steps)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time per variant")
    parser.add_argument("--moba_lengths", nargs="*", type=int, default=[8192, 16384])
    parser.add_argument("--override", nargs="*", default=[], help="KEY=VALUE config overrides")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.override)
    extra = {"machine": machine(), "args": vars(args), "missing": [], "samples": {}}
    rows = Rows()
    peak = matmul_peak_flops()
    rows.append(("f32 matmul FLOP/s (this machine)", peak))
    for name in args.variants:
        missing = [k for k in VARIANTS[name][2] if k not in ATTENTION_KINDS]
        if missing:
            extra["missing"].append(f"{name}: attention kind(s) {missing} not registered")
            rows.append((f"{name}", f"missing kind {missing}"))
            continue
        stop_after = min(args.stop_after or args.steps, args.steps)
        result = train_variant(name, args.steps, stop_after, args.minutes, overrides)
        extra["samples"][name] = result.pop("sample")
        for key, value in result.items():
            rows.append((f"{name} {key}", value))
        if name == "dense":
            rows.append(("dense train FLOP/s / matmul FLOP/s", result["train_flops_per_s"] / peak))
            for which in ("fastest", "median"):
                rows.append(
                    (f"dense {which} step / matmul peak, median of rounds",
                     result[f"{which}_step_peak_fraction"])
                )  # fmt: skip
    for length in args.moba_lengths:
        dense_s = attention_seconds("dense", length, {})
        rows.append((f"dense causal T={length} fwd+bwd s", dense_s))
        rows.append(
            (f"dense causal T={length} attention FLOPs", attention_flops(length, length / 2))
        )
        if "moba" not in ATTENTION_KINDS:
            extra["missing"].append("moba: attention kind not registered")
            continue
        moba_s = attention_seconds("moba", length, MOBA)
        block, top_k = MOBA["block_size"], MOBA["top_k"]
        keys = min(top_k * block, length / 2) - block / 2  # own block half, causal
        rows.append((f"moba T={length} fwd+bwd s", moba_s))
        rows.append((f"moba T={length} attention FLOPs", attention_flops(length, keys)))
        rows.append((f"moba T={length} speed-up vs dense", dense_s / moba_s))
    report("attnzoo language benchmarks", rows, args.out, extra)
    for name, text in extra["samples"].items():
        print(f"\n--- sample of {name} ---\n{text}")
    for line in extra["missing"]:
        print(f"missing: {line}")


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
