"""Run logging: a stdout line per interval, `metrics.jsonl`, TensorBoard events and, at the
end, `curves.png`. Only process 0 writes; the others are silent."""

import json
import os
import time

import jax


class MetricsWriter:
    """One row per `(split, step)`: a run resumed from checkpoint `start_step` drops the rows
    its killed predecessor logged after that step (they are redone), and a row already
    logged for a `(split, step)` is not logged again."""

    def __init__(self, workdir: str, start_step: int = 0):
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        self._logged: set[tuple[str, int]] = set()
        if self.active:
            os.makedirs(workdir, exist_ok=True)
            rows = [r for r in read_metrics(self.path) if r["step"] <= start_step]
            if os.path.exists(self.path):
                _rewrite(self.path, rows)
            self._logged = {(r["split"], r["step"]) for r in rows}
            from tensorboardX import SummaryWriter

            # purge_step hides TensorBoard events a killed run logged past the checkpoint
            self._tb = SummaryWriter(
                os.path.join(workdir, "tensorboard"), purge_step=start_step + 1
            )

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        """Logs `metrics` of `split` ("train", "eval", ...) at `step`."""
        if not self.active:
            return
        metrics = {k: float(v) for k, v in metrics.items()}
        shown = "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        print(f"[{split}] step {step}: {shown}", flush=True)
        if (split, step) in self._logged:
            return
        self._logged.add((split, step))
        with open(self.path, "a") as f:
            f.write(
                json.dumps({"step": step, "split": split, "time": time.time(), **metrics}) + "\n"
            )
        for name, value in metrics.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if not self.active:
            return
        self._tb.close()
        plot_curves(self.path, os.path.join(os.path.dirname(self.path), "curves.png"))


def read_metrics(path: str) -> list[dict]:
    """Rows of a `metrics.jsonl`, in order (a line cut short by a kill is skipped)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _rewrite(path: str, rows: list[dict]) -> None:
    """Replaces `path` by `rows` atomically (a kill mid-write keeps the old file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(tmp, path)


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
    # Fixed margins (inches / figure size), not tight_layout: that draws the figure twice.
    height = 3 * rows_n
    fig.subplots_adjust(
        left=0.08, right=0.97, bottom=0.5 / height, top=1 - 0.35 / height, wspace=0.3, hspace=0.55
    )
    fig.savefig(out_path, dpi=100)
