"""Pathformer on ETTh1/ETTh2: test MSE/MAE beside the paper and the baselines, and speed.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/timeseries.py \
        [--configs pathformer_etth1_96 dlinear_etth1_96 ...] --out timeseries.json

Trains every config with the real engine (the official recipe: best checkpoint by val MAE,
early stopping), and prints per config: the best checkpoint's test MSE/MAE, the paper's
(MODELS.md), the repeat-last and seasonal-naive (daily) baselines on the same windows,
seconds per training epoch (steady state, without evaluation), time to the best checkpoint
and in all (compile included), beside this machine's f32 matmul FLOP/s of the same run.
Targets: ETTh1-96 MSE <= 0.380 and MAE <= 0.395; every horizon within 5% of the paper's
MSE; ETTh1-96 in <= 15 min, at half the official code's seconds per epoch.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import logged_time, machine, matmul_peak_flops, report  # noqa: E402

from attnzoo import data  # noqa: E402
from attnzoo.configs import apply_overrides, load_config  # noqa: E402
from attnzoo.eval.forecasting import baseline_metrics  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.train_loops.metrics_writer import read_metrics  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

# Pathformer paper, input 96 (MSE, MAE); see ../shared/reference/MODELS.md.
PAPER = {
    ("etth1", 96): (0.382, 0.400),
    ("etth1", 192): (0.440, 0.427),
    ("etth1", 336): (0.454, 0.432),
    ("etth1", 720): (0.479, 0.461),
    ("etth2", 96): (0.279, 0.331),
    ("etth2", 192): (0.349, 0.380),
    ("etth2", 336): (0.348, 0.382),
    ("etth2", 720): (0.398, 0.424),
}
DEFAULT_CONFIGS = [f"pathformer_{d}_{h}" for d in ("etth1", "etth2") for h in (96, 192, 336, 720)]


def epoch_seconds(rows: list[dict]) -> list[float]:
    """Training seconds of every epoch after the first (whose time includes compiling):
    from the end of one epoch's evaluations to the next epoch's train log line."""
    times = []
    last_eval_end = None
    for row in rows:
        if row["split"] == "train" and last_eval_end is not None:
            times.append(row["time"] - last_eval_end)
        elif row["split"] != "train":
            last_eval_end = row["time"]
    return times


def run(name: str, root: str, overrides: dict) -> list[tuple[str, object]]:
    config = load_config(name)
    apply_overrides(config, overrides)
    workdir = os.path.join(root, name)
    start = time.time()
    results = Trainer(config, workdir).train()
    total = time.time() - start
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    epochs = sorted(epoch_seconds(rows))
    best_time = logged_time(workdir, results["best_step"], config.select.split) - start
    key = (config.data.name, config.data.horizon)
    test = data.make_window_dataset(
        config.data.name, "test", horizon=config.data.horizon, batch_size=512,
        shuffle=False, seed=0, repeat=False, drop_remainder=False,
    )  # fmt: skip
    info = data.dataset_info(config.data.name)
    baselines = baseline_metrics(test, config.data.horizon, info["period"])
    paper = PAPER.get(key, (float("nan"), float("nan")))
    return [
        (f"{name} test MSE", results["mse"]),
        (f"{name} test MAE", results["mae"]),
        (f"{name} paper MSE / MAE", f"{paper[0]} / {paper[1]}"),
        (f"{name} MSE vs paper", results["mse"] / paper[0] - 1),
        (
            f"{name} repeat-last MSE / MAE",
            "{mse:.4f} / {mae:.4f}".format(**baselines["repeat_last"]),
        ),
        (
            f"{name} seasonal-naive MSE / MAE",
            "{mse:.4f} / {mae:.4f}".format(**baselines["seasonal_naive"]),
        ),
        (f"{name} best step / epochs run", f"{results['best_step']} / {len(epochs) + 1}"),
        (
            f"{name} s per epoch (median, batch {config.train.batch_size})",
            epochs[len(epochs) // 2] if epochs else float("nan"),
        ),
        (f"{name} s to best checkpoint", best_time),
        (f"{name} s in all (compile included)", total),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS + ["dlinear_etth1_96"])
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    parser.add_argument(
        "--official_epoch_seconds",
        type=float,
        default=None,
        help="the official code's 'cost time' per epoch for the first config, timed on this "
        "machine (procedure in benchmarks/README.md): adds the speed-up",
    )
    args, rest = parser.parse_known_args()
    overrides = dict(r[len("--config.") :].split("=", 1) for r in rest)
    root = args.workdir or tempfile.mkdtemp(prefix="timeseries_")
    peak = matmul_peak_flops()
    figures = [("f32 matmul peak GFLOP/s", peak / 1e9)]
    for name in args.configs:
        figures += run(name, root, overrides)
    if args.official_epoch_seconds:
        name = args.configs[0]
        ours = dict(figures)[next(k for k, _ in figures if k.startswith(f"{name} s per epoch"))]
        figures += [
            (f"{name} official s per epoch (this machine)", args.official_epoch_seconds),
            (f"{name} speed-up vs official (target >= 2)", args.official_epoch_seconds / ours),
        ]
    report("Pathformer on ETT (input 96)", figures, args.out, {"machine": machine()})


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
