"""Two processes on loopback (gloo CPU collectives) train exactly like one process: same
losses, parameters and eval metrics, with uneven eval shards and a process whose eval shard
is empty."""

import json
import subprocess
import sys

import jax
import numpy as np
import portpicker

from attnzoo.zoo.pretrained import read_model_params
from tests.helpers import REPO, cli, cli_env, train_losses

ARGS = (
    "--config=vit_tiny_digits:smoke",
    "--config.train.steps=4",
    "--config.train.log_every=1",
    "--config.train.batch_size=32",
    "--config.train.checkpoint_every=2",
    "--config.train.eval_batch_size=32",
    "--config.data.eval_split=test[:37]",  # shards of 19 and 18: 16 + 3 and 16 + 2
)


def _two_processes(module: str, *args: str) -> list[str]:
    """Runs `module` on 2 processes of 4 devices each; returns their stdouts."""
    port = portpicker.pick_unused_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                *args,
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
    return [out for out, _ in outputs]


def _final_eval(workdir: str) -> dict:
    with open(f"{workdir}/final_eval.json") as f:
        return json.load(f)


def test_two_processes_match_one(tmp_path):
    single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
    result = cli("attnzoo.train", *ARGS, f"--workdir={single}")
    assert result.returncode == 0, result.stderr[-2000:]
    _two_processes("attnzoo.train", *ARGS, f"--workdir={multi}")

    expected, got = train_losses(single), train_losses(multi)
    assert sorted(got) == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [got[s] for s in range(1, 5)], [expected[s] for s in range(1, 5)], rtol=1e-5
    )
    a, b = _final_eval(single), _final_eval(multi)
    assert a.keys() == b.keys() == {"loss", "accuracy"}
    assert a["accuracy"] == b["accuracy"]
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    leaves = jax.tree.leaves(read_model_params(single)), jax.tree.leaves(read_model_params(multi))
    assert len(leaves[0]) == len(leaves[1]) > 10
    for x, y in zip(*leaves):
        # atol: the key bias has a zero gradient in exact arithmetic (softmax is shift-
        # invariant); Adam turns its rounding noise into ~1e-6 steps that differ by layout
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)

    # one example: process 1's eval shard is empty
    out = _two_processes(
        "attnzoo.eval", "--config=vit_tiny_digits:smoke", f"--workdir={multi}", "--split=test[:1]"
    )
    two = json.loads(out[0].strip().splitlines()[-1])
    result = cli(
        "attnzoo.eval", "--config=vit_tiny_digits:smoke", f"--workdir={multi}", "--split=test[:1]"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    one = json.loads(result.stdout.strip().splitlines()[-1])
    assert two["accuracy"] == one["accuracy"] and two["step"] == one["step"] == 4
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
