"""Fine-tuning recipes: from pretrained weights vs from scratch at the same budget.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/finetune.py --out ft.json \
        [--init=vit_tiny.fmnist_p4] [--config.train.steps=60 ...]

Runs a fine-tuning config (default `vit_tiny_fmnist_to_digits`; also
`pathformer_etth1_to_etth2_96`, `lm_tiny_shakespeare_to_pydoc`) twice with the real
engine: once from `--init` (a tag in the cache, a `.safetensors` release or a training
workdir; default the config's `init_from`), once from scratch, same steps, seed and data
order. Prints the eval-split metrics of both and the gain in the config's selection metric
(`config.select`; else accuracy for classifiers, the loss for others). Target: pretrained better.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, report  # noqa: E402

from attnzoo.configs import apply_overrides, load_config  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

EVAL_METRICS = ("accuracy", "loss", "bits_per_byte", "mse", "mae")  # those families report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="vit_tiny_fmnist_to_digits")
    parser.add_argument("--init", default=None, help="pretrained source (default: the config's)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args, rest = parser.parse_known_args()
    overrides = dict(r[len("--config.") :].split("=", 1) for r in rest)
    root = tempfile.mkdtemp(prefix="finetune_")
    rows, runs = [], {}
    for start in ("pretrained", "scratch"):
        config = load_config(args.config)
        apply_overrides(config, overrides)
        config.init_from.path = "" if start == "scratch" else args.init or config.init_from.path
        began = time.time()
        results = Trainer(config, os.path.join(root, start)).train()
        runs[start] = {**results, "wall_s": time.time() - began, "init": config.init_from.path}
        split = config.data.eval_split
        rows += [(f"{start}: {split} {k}", float(results[k])) for k in EVAL_METRICS if k in results]
        rows.append((f"{start}: wall time (s)", runs[start]["wall_s"]))
    config = load_config(args.config)
    apply_overrides(config, overrides)
    if config.select.metric:
        metric, mode = config.select.metric, config.select.mode
    else:  # the eval split's accuracy for classifiers, else its loss
        metric, mode = ("accuracy", "max") if "accuracy" in runs["scratch"] else ("loss", "min")
    sign = -1.0 if mode == "min" else 1.0
    gain = sign * (runs["pretrained"][metric] - runs["scratch"][metric])
    rows.append((f"{metric} gain from pretraining (> 0: pretrained better)", float(gain)))
    extra = {"machine": machine(), "config": args.config, "overrides": overrides, "runs": runs}
    title = f"{args.config}: pretrained ({runs['pretrained']['init']}) vs scratch, "
    report(title + f"{config.train.steps} steps each", rows, args.out, extra)


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
