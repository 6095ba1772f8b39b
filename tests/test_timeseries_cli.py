"""Train → eval, sample, export (best checkpoint), through the command line, on the
embedded series."""

import json
import os

import numpy as np

from attnzoo.zoo.pretrained import read_weights
from tests.helpers import cli


def test_train_eval_sample_export_use_the_best_checkpoint(tmp_path):
    work = str(tmp_path / "run")
    overrides = ["--config.train.steps=3", "--config.train.eval_every=1"]
    result = cli("attnzoo.train", "--config=pathformer_demo:smoke", f"--workdir={work}", *overrides)
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(work, "selection.json")) as f:
        history = json.load(f)
    assert [row["step"] for row in history] == [1, 2, 3]
    best = min(history, key=lambda row: row["value"])
    assert os.listdir(os.path.join(work, "best", "checkpoints")) == [str(best["step"])]

    result = cli("attnzoo.eval", "--config=pathformer_demo:smoke", f"--workdir={work}")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["checkpoint"] == "best" and metrics["step"] == best["step"]
    assert abs(metrics["mae"] - best["eval"]["mae"]) < 1e-5  # the same test windows

    result = cli("attnzoo.sample", f"--workdir={work}", "--num=2")  # the run's own config
    assert result.returncode == 0, result.stderr[-2000:]
    plots = sorted(os.listdir(os.path.join(work, "samples")))
    assert len(plots) == 2 and all(p.endswith(".png") for p in plots)
    assert f"step {best['step']}: wrote 2 samples" in result.stdout

    release = str(tmp_path / "release")
    result = cli("attnzoo.export", f"--workdir={work}", "--name=pathformer.x", f"--out={release}")
    assert result.returncode == 0, result.stderr[-2000:]
    exported = read_weights(os.path.join(release, "pathformer.x.safetensors")).params
    kept = read_weights(os.path.join(work, "best")).params
    assert exported.keys() == kept.keys()
    for name, value in kept.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
