"""Two processes on loopback (gloo CPU collectives) train exactly like one process."""

import subprocess
import sys

import numpy as np
import portpicker

from tests.helpers import REPO, cli, cli_env, train_losses

ARGS = (
    "--config=vit_tiny_digits:smoke",
    "--config.train.steps=4",
    "--config.train.log_every=1",
    "--config.train.batch_size=32",
    "--config.train.checkpoint_every=2",
)


def test_two_processes_match_one(tmp_path):
    single = str(tmp_path / "single")
    result = cli("attnzoo.train", *ARGS, f"--workdir={single}")
    assert result.returncode == 0, result.stderr[-2000:]

    multi = str(tmp_path / "multi")
    port = portpicker.pick_unused_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "attnzoo.train",
                *ARGS,
                f"--workdir={multi}",
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            cwd=REPO,
            env=cli_env(devices=4),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    expected, got = train_losses(single), train_losses(multi)
    assert sorted(got) == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [got[s] for s in range(1, 5)], [expected[s] for s in range(1, 5)], rtol=1e-5
    )
