"""A run killed with SIGKILL resumes from its last checkpoint and continues the same curve."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests.helpers import REPO, cli, cli_env, train_losses

ARGS = (
    "--config=vit_tiny_digits:smoke",
    "--config.train.steps=300",
    "--config.train.log_every=1",
    "--config.train.checkpoint_every=50",
    "--config.train.batch_size=32",
    "--config.model.width=64",
    "--config.model.depth=2",
    "--config.train.eval_batch_size=32",
)


def test_killed_run_resumes_on_the_same_curve(tmp_path):
    reference = str(tmp_path / "reference")
    result = cli("attnzoo.train", *ARGS, f"--workdir={reference}")
    assert result.returncode == 0, result.stderr[-2000:]

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnzoo.train", *ARGS, f"--workdir={killed}"],
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(os.path.join(killed, "checkpoints", "100")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    steps_before = max(train_losses(killed))
    assert steps_before < 300

    result = cli("attnzoo.train", *ARGS, f"--workdir={killed}")
    assert result.returncode == 0, result.stderr[-2000:]
    expected, resumed = train_losses(reference), train_losses(killed)
    assert sorted(resumed) == list(range(1, 301))
    np.testing.assert_allclose(
        [resumed[s] for s in range(1, 301)], [expected[s] for s in range(1, 301)], rtol=1e-6
    )
