"""Run logging: a stdout line per interval, `metrics.jsonl`, TensorBoard events and, at the
end, `curves.png`. Only process 0 writes; the others are silent."""

import json
import os
import time

import jax


class MetricsWriter:
    def __init__(self, workdir: str):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if self.active:
            os.makedirs(workdir, exist_ok=True)
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        """Logs `metrics` of `split` ("train", "eval", ...) at `step`."""
        if not self.active:
            return
        metrics = {k: float(v) for k, v in metrics.items()}
        with open(self.path, "a") as f:
            f.write(
                json.dumps({"step": step, "split": split, "time": time.time(), **metrics}) + "\n"
            )
        for name, value in metrics.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)
        shown = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"[{split}] step {step}: {shown}", flush=True)

    def close(self) -> None:
        if not self.active:
            return
        self._tb.close()
        plot_curves(self.path, os.path.join(os.path.dirname(self.path), "curves.png"))


def read_metrics(path: str) -> list[dict]:
    """Rows of a `metrics.jsonl`, in order."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(metrics_path: str, out_path: str) -> None:
    """One panel per metric name, one line per split, against step."""
    rows = read_metrics(metrics_path)
    series: dict[str, dict[str, tuple[list, list]]] = {}
    for row in rows:
        for name, value in row.items():
            if name in ("step", "split", "time"):
                continue
            xs, ys = series.setdefault(name, {}).setdefault(row["split"], ([], []))
            xs.append(row["step"])
            ys.append(value)
    if not series:
        return
    # A bare Figure (no pyplot): leaves the caller's matplotlib backend alone.
    from matplotlib.figure import Figure

    names = sorted(series)
    cols = min(3, len(names))
    rows_n = -(-len(names) // cols)
    fig = Figure(figsize=(4 * cols, 3 * rows_n))
    axes = fig.subplots(rows_n, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for split, (xs, ys) in series[name].items():
            ax.plot(xs, ys, label=split, marker="." if len(xs) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend()
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
