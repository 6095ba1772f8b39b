"""A run killed with SIGKILL while writing a checkpoint resumes to the uninterrupted run's
exact losses, parameters and final metrics, with dropout and augmentation on (so the RNG
and the data position must be restored too)."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from attnzoo.zoo.pretrained import read_model_params
from tests.helpers import REPO, cli, cli_env, train_losses

STEPS = 40
ARGS = (
    "--config=vit_tiny_digits:smoke",
    f"--config.train.steps={STEPS}",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=10",
    "--config.train.eval_every=20",
    "--config.train.batch_size=32",
    "--config.train.eval_batch_size=32",
    "--config.model.dropout=0.1",
    "--config.data.augment=true",
)


def _kill_during_second_checkpoint_write(workdir: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnzoo.train", *ARGS, f"--workdir={workdir}"],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpts, deadline = os.path.join(workdir, "checkpoints"), time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        names = os.listdir(ckpts) if os.path.isdir(ckpts) else []
        # "20.orbax-checkpoint-tmp" while it is written; "20" once done (a fast write may be
        # missed between polls: then the kill lands right after it)
        if any(n.startswith("20") for n in names):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"


def _final(workdir: str):
    with open(os.path.join(workdir, "final_eval.json")) as f:
        return read_model_params(workdir), json.load(f)


def test_killed_run_resumes_to_identical_params(tmp_path):
    reference = str(tmp_path / "reference")
    result = cli("attnzoo.train", *ARGS, f"--workdir={reference}")
    assert result.returncode == 0, result.stderr[-2000:]

    killed = str(tmp_path / "killed")
    _kill_during_second_checkpoint_write(killed)
    assert max(train_losses(killed)) < STEPS
    result = cli("attnzoo.train", *ARGS, f"--workdir={killed}")
    assert result.returncode == 0, result.stderr[-2000:]

    expected, resumed = train_losses(reference), train_losses(killed)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    assert [resumed[s] for s in sorted(resumed)] == [expected[s] for s in sorted(expected)]
    (params, metrics), (want_params, want_metrics) = _final(killed), _final(reference)
    assert metrics == want_metrics
    leaves = jax.tree.leaves(params), jax.tree.leaves(want_params)
    assert len(leaves[0]) == len(leaves[1]) > 10
    for a, b in zip(*leaves):
        np.testing.assert_array_equal(a, b)
