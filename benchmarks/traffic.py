"""GMAN on Los-loop with each spatial embedding beside the baselines, and training time.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/traffic.py --out traffic.json \
        [--config.train.steps=40 ...]   # overrides apply to every run (a short budget)

Trains with the real engine (GMAN's recipe: best checkpoint by val masked MAE, early
stopping) `gman_losloop` (our node2vec), `gman_losloop_lap` (Laplacian eigenvectors),
`gman_losloop` with GMAN's published METR-LA node2vec file (same 207 sensors, same order)
and `linear_losloop`; prints the best checkpoint's test MAE / RMSE / MAPE at 15 / 30 / 60
minutes beside the last-value and historical-average baselines on the same windows (same
code: eval/traffic.py), the time to the best checkpoint, and how well each embedding
preserves graph neighbourhoods (graph.neighbourhood_preservation) on the Los-loop graph
and on METR-LA's (adj_mx.pkl, the graph GMAN's file was computed on).
Targets: GMAN beats every baseline on every metric at every horizon; best checkpoint
within 20 minutes on this machine.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import logged_time, machine, report  # noqa: E402

from attnzoo import graph  # noqa: E402
from attnzoo.configs import apply_overrides, load_config  # noqa: E402
from attnzoo.data import graph_windows, los_loop, metr_la, paths  # noqa: E402
from attnzoo.eval import traffic  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

RUNS = {
    "gman node2vec (ours)": ("gman_losloop", {}),
    "gman laplacian": ("gman_losloop_lap", {}),
    "gman node2vec (published)": (
        "gman_losloop",
        {"data.spatial_embedding.method": "published"},
    ),
    "linear": ("linear_losloop", {}),
}
COLUMNS = [f"{m}_{h}" for h in traffic.HORIZONS for m in ("mae", "rmse", "mape")]


def baselines() -> dict[str, dict[str, float]]:
    """Last value and historical average on the test windows."""
    train = graph_windows.window_source("los_loop", "train")
    test = graph_windows.window_source("los_loop", "test")
    period = los_loop.STEPS_PER_DAY
    table = traffic.fit_historical_average(train.raw, train.time[:, 1], period)
    sums = {"last value": None, "historical average": None}
    for i in range(len(test)):
        w = test[i]
        target = w["targets"][None]
        last = traffic.last_value(test.raw[i + test.input_len - 1][None], test.horizon)
        average = traffic.historical_average(table, w["time"][None, test.input_len :, 1])
        for name, pred in (("last value", last), ("historical average", average)):
            sums[name] = traffic.accumulate(sums[name], traffic.masked_sums(pred, target))
    return {name: traffic.summarize(s) for name, s in sums.items()}


def train(label: str, name: str, overrides: dict, root: str, extra: list[str]) -> dict:
    config = load_config(name)
    apply_overrides(config, {**overrides, **dict(e.split("=", 1) for e in extra)})
    start = time.time()
    workdir = os.path.join(root, label.replace(" ", "_").replace("(", "").replace(")", ""))
    results = Trainer(config, workdir).train()
    out = traffic.summarize(
        {k: v for k, v in results.items() if k.split("_")[0] in ("mae", "mse", "mape")}
    )
    out["best step"] = results.get("best_step")
    out["seconds in all"] = time.time() - start
    if out["best step"] is not None:
        best = logged_time(workdir, out["best step"], config.select.split)
        out["seconds to best"] = best - start
    return out


def preservation() -> list[tuple[str, object]]:
    """Neighbourhood preservation of every embedding on both graphs."""
    rows = []
    los = los_loop.load_adjacency()
    _, metr = metr_la.load_graph()
    published = metr_la.load_published_embedding()
    config = load_config("gman_losloop").data.spatial_embedding
    params = {
        k: config[k] for k in ("p", "q", "num_walks", "walk_length", "window", "epochs", "seed")
    }
    cache = paths.cache_root() / "spatial_embeddings"
    for graph_name, a in (("los_loop", los), ("metr_la", metr)):
        ours = graph.spatial_embedding(a, "node2vec", dim=64, cache_dir=cache, **params)
        lap = graph.spatial_embedding(a, "laplacian", dim=64, cache_dir=cache)
        random = np.random.default_rng(0).normal(size=ours.shape)
        for label, e in (
            ("node2vec (ours)", ours),
            ("node2vec (published)", published),
            ("laplacian", lap),
            ("random", random),
        ):
            rows.append(
                (
                    f"neighbourhood preservation {graph_name}: {label}",
                    graph.neighbourhood_preservation(e, a),
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--no-preservation", action="store_true", help="skip the node2vec part")
    parser.add_argument("--workdir", default=None, help="default: a temporary directory")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args, rest = parser.parse_known_args()
    extra = [r[len("--config.") :] for r in rest]
    root = args.workdir or tempfile.mkdtemp(prefix="traffic_")
    results = baselines()
    for label in args.runs:
        results[label] = train(label, *RUNS[label], root, extra)
    figures = []
    for label, values in results.items():
        figures.append(
            (
                f"{label}: MAE/RMSE/MAPE% 15|30|60 min",
                " | ".join(
                    "{:.2f}/{:.2f}/{:.2f}".format(
                        *(values[f"{m}_{h}"] for m in ("mae", "rmse", "mape"))
                    )
                    for h in traffic.HORIZONS
                ),
            )
        )
        if values.get("best step") is not None:
            figures.append(
                (
                    f"{label}: best step / s to it / s in all",
                    "{} / {:.0f} / {:.0f}".format(
                        values["best step"], values["seconds to best"], values["seconds in all"]
                    ),
                )
            )
    gman = [v for k, v in results.items() if k.startswith("gman")]
    base = [v for k, v in results.items() if not k.startswith("gman")]
    for i, g in enumerate(gman):
        beats = all(g[c] < b[c] for b in base for c in COLUMNS)
        figures.append(
            (f"{[k for k in results if k.startswith('gman')][i]}: beats all baselines", beats)
        )
    if not args.no_preservation:
        figures += preservation()
    report(
        "GMAN on Los-loop (12 → 12 steps, test split)",
        figures,
        args.out,
        {"machine": machine(), "overrides": extra, "results": results},
    )


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
