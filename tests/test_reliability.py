"""Fast versions of benchmarks/reliability.py: malformed invocations, failing checkpoint
writes, and a SIGTERM that saves and stops (the random-kill part is tests/test_resume.py)."""

import os
import signal

import pytest

from attnzoo.configs import load_config
from attnzoo.train_loops.checkpointing import Checkpointer
from attnzoo.train_loops.shutdown import TrainingInterrupted
from attnzoo.train_loops.trainer import Trainer
from benchmarks import reliability

FAST_CASES = (
    "train: not a config (/etc/passwd)",
    "train: config file without get_config",
    "train: vit_tiny_digits:smoke: negative steps",
    "train: vit_tiny_digits:smoke: batch the mesh cannot split",
    "train: vit_tiny_digits:smoke: good workdir, different model.width",
    "eval: vit_tiny_digits:smoke: mesh larger than devices",
    "eval: no checkpoint in workdir",
    "train: pathformer_demo:smoke: zero horizon",
    "sample: no checkpoint in workdir",
    "sample: a family without a sampler",
    "sample: override without --config",
)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("good") / "run")
    reliability.make_good_run(workdir)
    return workdir


def test_malformed_invocations_fail_cleanly(tmp_path, good_run):
    table = {
        c.name: c for c in reliability.invocation_cases(reliability.write_bad_configs(tmp_path))
    }
    assert len(table) >= 50
    result = reliability.part_a(str(tmp_path), good_run, [table[name] for name in FAST_CASES])
    assert result["clean"] == len(FAST_CASES), result["failures"]


def test_failing_checkpoint_write_is_one_line_and_keeps_the_last(tmp_path, good_run):
    result = reliability.part_c(str(tmp_path), good_run)
    assert result["exit_code"] == 1 and result["one_clear_line"], result["message"]
    assert result["previous_checkpoint_intact"] and result["previous_checkpoint_restores"]


def test_sigterm_saves_the_current_step_and_stops(tmp_path, monkeypatch):
    config = load_config("vit_tiny_digits:smoke")
    config.mesh.shape = (1, 1, 1)
    config.train.update(steps=1000, checkpoint_every=1000, log_every=1000)
    trainer = Trainer(config, str(tmp_path))
    real_step, calls = trainer.train_step, []

    def step_then_signal(state, batch):
        calls.append(1)
        if len(calls) == 3:  # arrives while step 3 runs
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(state, batch)

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 3") as info:
        trainer.train()
    assert info.value.signum == signal.SIGTERM and len(calls) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    checkpointer = Checkpointer(str(tmp_path), every=1, keep=2)
    assert checkpointer.latest_step() == 3
    _, data_state, step = trainer.restore(checkpointer, 3)
    checkpointer.close()
    assert step == 3 and data_state  # the data position of step 3 was saved with it
