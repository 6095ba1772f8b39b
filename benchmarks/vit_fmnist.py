"""ViT-tiny on Fashion-MNIST: accuracy, wall time, throughput and matmul efficiency.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/vit_fmnist.py --out fmnist.json

Trains `vit_tiny_fmnist` (the full recipe, or `--config.*` overrides) with the real engine,
evaluates the test set, and prints: test accuracy, training wall time, images/s, the train
step's achieved FLOP/s (its matmul FLOPs, `common.matmul_flops` / measured step time) and
that as a fraction of this machine's f32 matmul peak, measured in the same run.
Target: >= 88% test accuracy within 15 minutes, >= 40% of the matmul peak.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, matmul_peak_flops, report, step_flops  # noqa: E402

from attnzoo.configs import apply_overrides, load_config  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vit_tiny_fmnist")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args, rest = parser.parse_known_args()
    config = load_config(args.config)
    apply_overrides(config, dict(r[len("--config.") :].split("=", 1) for r in rest))
    config.train.eval_every = 0  # one eval at the end: the timing covers training only
    workdir = args.workdir or tempfile.mkdtemp(prefix="vit_fmnist_")
    shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
    if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
        os.remove(os.path.join(workdir, "metrics.jsonl"))

    peak = matmul_peak_flops()
    trainer = Trainer(config, workdir)
    batches = trainer.family.make_dataset("train", train=True, process_index=0, process_count=1)
    flops = step_flops(trainer, next(iter(batches)))
    start = time.time()
    results = trainer.train()
    total = time.time() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    train_rows = [r for r in rows if r["split"] == "train"]
    first, last = train_rows[0], train_rows[-1]  # steady state: after the first log interval
    steps_per_s = (last["step"] - first["step"]) / (last["time"] - first["time"])
    achieved = flops * steps_per_s
    figures = [
        ("test accuracy", results["accuracy"]),
        ("test loss", results["loss"]),
        ("steps", config.train.steps),
        ("batch size", config.train.batch_size),
        ("wall time incl. compile + eval (s)", total),
        ("train time to last step (s)", last["time"] - start),
        ("images/s (steady state)", steps_per_s * config.train.batch_size),
        ("step GFLOP", flops / 1e9),
        ("achieved GFLOP/s", achieved / 1e9),
        ("f32 matmul peak GFLOP/s", peak / 1e9),
        ("fraction of matmul peak", achieved / peak),
    ]
    report(
        f"{args.config} on Fashion-MNIST",
        figures,
        args.out,
        {"machine": machine(), "config": config.to_dict()},
    )


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
