"""Best-checkpoint selection, early stopping and the one-cycle schedule."""

import ml_collections
import numpy as np
import pytest

from attnzoo.train_loops.optimizers import make_schedule
from attnzoo.train_loops.selection import Selection


class ScriptedTrainer:
    """Evaluations return scripted val MAEs (test MAE = 10 × val); evaluations and saves are
    recorded in order."""

    def __init__(self, val_maes, patience):
        self.config = ml_collections.ConfigDict(
            {
                "data": {"eval_split": "test"},
                "select": {"split": "val", "metric": "mae", "mode": "min", "patience": patience},
            }
        )
        self.val = iter(val_maes)
        self.saved, self.evaluated = [], []
        self._last = None

    def evaluate(self, state, split):
        self.evaluated.append(split)
        if split == self.config.select.split or not self.config.select.split:
            self._last = next(self.val)
            return {"mae": self._last * (10 if split == "test" else 1)}
        return {"mae": 10 * self._last}

    def save(self, checkpointer, step, state, data_state):
        self.saved.append(step)
        self.evaluated.append("save")


class Writer:
    def __init__(self):
        self.rows = []

    def write(self, step, split, metrics):
        self.rows.append((step, split, metrics))


def run(selection, steps):
    writer = Writer()
    for step in steps:
        if selection.stopped:
            break
        selection.evaluate({}, step, {}, writer)
    return writer


def test_keeps_the_best_and_stops_after_patience(tmp_path):
    trainer = ScriptedTrainer([0.5, 0.4, 0.45, 0.41, 0.6, 0.3], patience=3)
    selection = Selection(trainer, str(tmp_path))
    writer = run(selection, [10, 20, 30, 40, 50, 60])
    selection.close()
    assert trainer.saved == [10, 20]  # improvements only
    assert selection.stopped and selection.history[-1]["step"] == 50  # 3 evals without gain
    assert selection.final({}) == {"mae": 4.0, "best_step": 20, "val_mae": 0.4}
    # val at every evaluation; test after each improvement only, once its checkpoint is saved
    assert [(step, split) for step, split, _ in writer.rows] == [
        (10, "val"),
        (10, "eval"),
        (20, "val"),
        (20, "eval"),
        (30, "val"),
        (40, "val"),
        (50, "val"),
    ]
    assert trainer.evaluated == ["val", "save", "test"] * 2 + ["val"] * 3


def test_resume_cuts_the_history_back_to_the_restored_step(tmp_path):
    first = Selection(ScriptedTrainer([0.5, 0.4, 0.45, 0.46], patience=2), str(tmp_path))
    run(first, [10, 20, 30, 40])
    first.close()
    assert first.stopped
    resumed = Selection(ScriptedTrainer([0.39], patience=2), str(tmp_path))
    resumed.resume(30)  # the last checkpoint was at step 30
    assert [r["step"] for r in resumed.history] == [10, 20, 30] and not resumed.stopped
    run(resumed, [40])
    resumed.close()
    assert resumed.best["step"] == 40 and resumed.trainer.saved == [40]


def test_without_select_only_the_eval_split_runs(tmp_path):
    trainer = ScriptedTrainer([0.5, 0.4], patience=0)
    trainer.config.select.split = ""
    selection = Selection(trainer, str(tmp_path))
    writer = run(selection, [1, 2])
    assert [split for _, split, _ in writer.rows] == ["eval", "eval"]
    assert trainer.saved == [] and not selection.stopped
    assert selection.final({"mae": 1.0}) == {"mae": 1.0}


def test_selecting_on_the_eval_split_evaluates_once(tmp_path):
    trainer = ScriptedTrainer([0.5, 0.4, 0.45], patience=0)
    trainer.config.select.split = "test"  # as the language configs: val selects and reports
    selection = Selection(trainer, str(tmp_path))
    writer = run(selection, [1, 2, 3])
    selection.close()
    assert [split for _, split, _ in writer.rows] == ["eval"] * 3  # one evaluation each
    assert trainer.saved == [1, 2]
    assert selection.final({}) == {"mae": 4.0, "best_step": 2, "test_mae": 4.0}


def torch_one_cycle(step, total, peak, pct=0.4, div=25.0, final_div=1e4):
    """PyTorch `OneCycleLR` (cos annealing, two phases) written out from its docs."""
    initial, minimum = peak / div, peak / div / final_div
    up_end = pct * total - 1
    if step <= up_end:
        start, end, frac = initial, peak, step / up_end
    else:
        start, end, frac = peak, minimum, (step - up_end) / (total - 1 - up_end)
    return end + (start - end) / 2 * (1 + np.cos(np.pi * frac))


def test_one_cycle_follows_pytorch():
    config = ml_collections.ConfigDict(
        {"name": "one_cycle", "pct_start": 0.4, "div_factor": 25.0, "final_div_factor": 1e4}
    )
    schedule = make_schedule(config, 5e-4, 1980)
    # optax's phases end one step later than PyTorch's: equal up to a one-step shift.
    for step in range(0, 1980, 7):
        assert float(schedule(step)) == pytest.approx(torch_one_cycle(step, 1980, 5e-4), abs=2e-6)
