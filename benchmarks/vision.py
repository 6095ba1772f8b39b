"""Routed and selected attention on vision: accuracy/throughput and BRA vs dense attention.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/vision.py --out vision.json
    .venv/bin/python benchmarks/vision.py --part bra --out bra.json   # no data needed

`--part train`: trains `vit_tiny_fmnist_p4` (ViT-tiny, 4x4 patches, 49 tokens),
`vit_spa_fmnist` (+ Select-and-Pack) and `biformer_tiny_fmnist` for the same wall-clock
budget (`--minutes`, default 15) with the real engine: a short calibration run measures
each model's steps/s, the config's step count is set to fill the budget (so the cosine
schedule ends on time), then it trains and evaluates the 10k test images. Prints test
accuracy, steady-state images/s and (SPA) the fraction of tokens kept.
Targets: SPA keeps <= 60% of tokens, loses <= 0.5 points, runs >= 1.3x more images/s;
BiFormer-tiny >= ViT-tiny's accuracy.

`--part bra`: forward+backward time and XLA's peak temporary memory of bi-level routing
attention (BiFormer-T stage-1 settings: 7x7 regions, top-k 4, 2 heads of 32) vs dense
attention over the same tokens, on 56x56 and 112x112 token grids. Target: BRA >= 3x
faster than dense at 112x112. Dense runs are skipped (reported as such) when XLA's memory
estimate exceeds `--max_gb`.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, report  # noqa: E402

from attnzoo.configs import load_config  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.layers.attention import attend  # noqa: E402
from attnzoo.layers.routing import route, routed_attention  # noqa: E402
from attnzoo.layers.token_order import to_window_first  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

CONFIGS = ("vit_tiny_fmnist_p4", "vit_spa_fmnist", "biformer_tiny_fmnist")


def _train_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["split"] == "train"]


def _steps_per_s(rows: list[dict]) -> float:
    first, last = rows[0], rows[-1]  # steady state: after the first log interval
    return (last["step"] - first["step"]) / (last["time"] - first["time"])


def train_within(name: str, budget_s: float, calib_steps: int) -> dict:
    """Calibrate, size `train.steps` to the budget, train, evaluate."""
    calib = load_config(name)
    calib.train.update(steps=calib_steps, log_every=max(calib_steps // 4, 1), eval_every=0)
    calib.train.checkpoint_every = 10**9
    workdir = tempfile.mkdtemp(prefix=f"{name}_calib_")
    start = time.time()
    trainer = Trainer(calib, workdir)
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    state = trainer.init_state()
    state, _ = trainer.train_step(state, next(data))  # compile
    jax.block_until_ready(state)
    overhead = time.time() - start
    t0 = time.time()
    for _ in range(calib_steps):
        state, metrics = trainer.train_step(state, next(data))
    jax.block_until_ready(metrics)
    step_s = (time.time() - t0) / calib_steps
    shutil.rmtree(workdir, ignore_errors=True)

    config = load_config(name)
    eval_reserve = 60.0  # the final evaluation of 10k images
    config.train.steps = max(int((budget_s - overhead - eval_reserve) / step_s), 1)
    config.train.update(eval_every=0, checkpoint_every=config.train.steps)
    workdir = tempfile.mkdtemp(prefix=f"{name}_")
    start = time.time()
    results = Trainer(config, workdir).train()
    total = time.time() - start
    rows = _train_rows(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    out = {
        "test accuracy": results["accuracy"],
        "test loss": results["loss"],
        "steps": config.train.steps,
        "wall time (s)": total,
        "images/s": _steps_per_s(rows) * config.train.batch_size if len(rows) > 1 else None,
    }
    if "kept_fraction" in results:
        out["kept fraction (test)"] = results["kept_fraction"]
    return out


def _timed(fn, *args, repeats: int) -> tuple[float, float]:
    """(best seconds per call, XLA peak temporary bytes) of jitted `fn`."""
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t)
    return best, float(compiled.memory_analysis().temp_size_in_bytes)


def bra_vs_dense(side: int, *, n_win=7, topk=4, heads=2, head_dim=32, repeats=3, max_gb=6.0):
    """Forward+backward of the attention step alone, BRA vs dense, on a side x side grid."""
    n, window = side * side, (side // n_win, side // n_win)
    keys = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(kk, (1, n, heads, head_dim)) for kk in keys)
    scale = (heads * head_dim) ** -0.5
    rt = window[0] * window[1]

    def bra_loss(q, k, v):
        wf = [to_window_first(t, (side, side), window) for t in (q, k, v)]
        flat = [t.reshape(1, n, -1) for t in wf[:2]]
        idx = route(*flat, n_regions=n_win**2, topk=topk, scale=scale)
        return routed_attention(*wf, idx, region_tokens=rt, scale=scale, impl="xla").sum()

    def dense_loss(q, k, v):
        return attend(q, k, v, scale=scale, impl="xla").sum()

    grad = jax.grad
    out = {}
    t, mem = _timed(grad(bra_loss, argnums=(0, 1, 2)), q, k, v, repeats=repeats)
    out.update(
        {f"{side}x{side} BRA fwd+bwd (ms)": t * 1e3, f"{side}x{side} BRA peak MB": mem / 2**20}
    )
    dense_fn = grad(dense_loss, argnums=(0, 1, 2))
    est = jax.jit(dense_fn).lower(q, k, v).compile().memory_analysis().temp_size_in_bytes
    if est > max_gb * 2**30:
        out[f"{side}x{side} dense"] = f"skipped: XLA estimates {est / 2**30:.1f} GB > {max_gb} GB"
        return out
    t_dense, mem_dense = _timed(dense_fn, q, k, v, repeats=repeats)
    out.update(
        {
            f"{side}x{side} dense fwd+bwd (ms)": t_dense * 1e3,
            f"{side}x{side} dense peak MB": mem_dense / 2**20,
            f"{side}x{side} BRA speed-up": t_dense / t,
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "train", "bra"), default="all")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--calib_steps", type=int, default=10)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--sides", default="56,112")
    parser.add_argument("--max_gb", type=float, default=6.0)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    rows = []
    if args.part in ("all", "bra"):
        for side in map(int, args.sides.split(",")):
            rows += list(bra_vs_dense(side, max_gb=args.max_gb).items())
    if args.part in ("all", "train"):
        for name in args.configs.split(","):
            result = train_within(name, args.minutes * 60, args.calib_steps)
            rows += [(f"{name}: {k}", v) for k, v in result.items()]
    report(
        "Vision: routed (BiFormer) and selected (SPA) attention",
        rows,
        args.out,
        {"machine": machine(), "args": vars(args)},
    )


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
