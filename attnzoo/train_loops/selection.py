"""Evaluation on several splits, the best checkpoint by a validation metric, early stopping.

`config.select` (optional; absent or `split=""`: evaluate `data.eval_split` only, keep no
best checkpoint, never stop early):
  split: the validation split that selects (e.g. "val"); metric: one of the family's eval
  metrics (e.g. "mae"); mode: "min" or "max"; patience: evaluations without improvement
  after which training stops (0: never).
Every evaluation runs on `select.split` (logged under its name); an improvement saves the
state to `WORKDIR/best/checkpoints/<step>` (one kept) and then evaluates `data.eval_split`
(logged as "eval"), which a run reports for its best checkpoint only: as the official
GMAN and the papers' protocol, the test split is not evaluated at steps that cannot be
reported, and the best checkpoint is on disk before its test evaluation starts. When the
two splits are the same (language configs) one evaluation serves both, at every step.
The history `WORKDIR/selection.json` (`[{step, value, eval}]`, `eval` null where not
evaluated) is cut back to the restored step on resume, so a resumed run selects and stops
as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil

import jax

from attnzoo.train_loops.checkpointing import Checkpointer


def best_workdir(workdir: str) -> str:
    """The folder whose `checkpoints/` holds the best checkpoint."""
    return os.path.join(workdir, "best")


def best_step(workdir: str) -> int | None:
    """Step of the best checkpoint in `workdir`, or None when there is none."""
    directory = os.path.join(best_workdir(workdir), "checkpoints")
    if not os.path.isdir(directory):
        return None
    steps = [int(name) for name in os.listdir(directory) if name.isdigit()]
    return max(steps) if steps else None


class Selection:
    """Runs the evaluations of a `Trainer` and keeps the best checkpoint."""

    def __init__(self, trainer, workdir: str):
        self.trainer, self.workdir = trainer, workdir
        config = trainer.config
        select = config.get("select") or {}
        self.split = select.get("split", "")
        self.metric = select.get("metric", "")
        self.mode = select.get("mode", "min")
        self.patience = select.get("patience", 0)
        self.eval_split = config.data.eval_split
        if self.mode not in ("min", "max"):
            raise ValueError(f"select.mode={self.mode!r} must be 'min' or 'max'")
        self.path = os.path.join(workdir, "selection.json")
        self.history: list[dict] = []
        self._best: Checkpointer | None = None

    def resume(self, step: int) -> None:
        """Loads the history of evaluations up to `step` (the restored step) and drops a best
        checkpoint a killed run saved after it (the resumed run evaluates that step again)."""
        if self.split and os.path.exists(self.path):
            with open(self.path) as f:
                self.history = [row for row in json.load(f) if row["step"] <= step]
        best = best_step(self.workdir)
        if best is not None and best > step and jax.process_index() == 0:
            shutil.rmtree(os.path.join(best_workdir(self.workdir), "checkpoints", str(best)))

    def _better(self, value: float, than: float) -> bool:
        return value < than if self.mode == "min" else value > than

    @property
    def best(self) -> dict | None:
        best = None
        for row in self.history:
            if best is None or self._better(row["value"], best["value"]):
                best = row
        return best

    @property
    def stopped(self) -> bool:
        """True once `patience` evaluations in a row did not improve on the best."""
        best = self.best
        if not self.patience or best is None:
            return False
        return sum(row["step"] > best["step"] for row in self.history) >= self.patience

    def evaluate(self, state: dict, step: int, data_state: dict, writer) -> dict[str, float]:
        """Evaluates and logs `step` (see the module docstring), saves an improvement as the
        best; returns the `data.eval_split` metrics, or the selection split's at a step
        without improvement."""
        if not self.split or self.split == self.eval_split:
            results = self.trainer.evaluate(state, self.eval_split)
            writer.write(step, "eval", results)
            if not self.split:
                return results
        else:
            results = self.trainer.evaluate(state, self.split)
            writer.write(step, self.split, results)
        if self.metric not in results:
            raise ValueError(
                f"select.metric={self.metric!r} is not an eval metric; have {', '.join(results)}"
            )
        best = self.best
        row = {"step": step, "value": results[self.metric], "eval": results}
        self.history = [r for r in self.history if r["step"] < step]
        improved = best is None or self._better(row["value"], best["value"])
        if improved:
            if self._best is None:
                self._best = Checkpointer(best_workdir(self.workdir), every=1, keep=1)
            self.trainer.save(self._best, step, state, data_state)
            if self.split != self.eval_split:
                row["eval"] = results = self.trainer.evaluate(state, self.eval_split)
                writer.write(step, "eval", results)
        else:
            row["eval"] = None  # never reported: not evaluated on the eval split
        self.history.append(row)
        if jax.process_index() == 0:  # atomically: a kill leaves the old or the new file
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.history, f, indent=1)
            os.replace(self.path + ".tmp", self.path)
        return results

    def final(self, results: dict[str, float]) -> dict[str, float]:
        """What a run reports: the best checkpoint's eval-split metrics and its step, or
        `results` (the last evaluation) without selection."""
        best = self.best
        if best is None:
            return results
        return {
            **best["eval"],
            "best_step": best["step"],
            f"{self.split}_{self.metric}": best["value"],
        }

    def close(self) -> None:
        if self._best is not None:
            self._best.close()
