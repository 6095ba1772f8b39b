"""The training engine: sharding, checkpoints, init_from and the NaN guard."""

import os
import shutil

import jax
import numpy as np
import pytest

from attnzoo import data
from attnzoo.configs import load_config
from attnzoo.train_loops.checkpointing import Checkpointer
from attnzoo.train_loops.metrics_writer import read_metrics
from attnzoo.train_loops.trainer import NonFiniteLossError, Trainer
from attnzoo.zoo.pretrained import read_model_params
from tests.helpers import cli


def _config(mesh=(1, 1, 1), **train):
    config = load_config("vit_tiny_digits:smoke")
    config.mesh.shape = mesh
    config.model.update(width=64, num_heads=4, mlp_dim=128, depth=2)
    config.train.update(batch_size=32, **train)
    return config


def _run_steps(trainer: Trainer, steps: int):
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    state, losses = trainer.init_state(), []
    for _ in range(steps):
        state, metrics = trainer.train_step(state, next(data))
        losses.append(float(metrics["loss"]))
    return state, losses


@pytest.mark.parametrize("mesh", [(2, 4, 1), (2, 1, 4)])
def test_sharded_step_equals_single_device(tmp_path, mesh):
    single, single_losses = _run_steps(Trainer(_config((1, 1, 1)), str(tmp_path / "a")), 3)
    trainer = Trainer(_config(mesh), str(tmp_path / "b"))
    sharded, sharded_losses = _run_steps(trainer, 3)
    # params really are split over the mesh
    kernel = sharded["model"]["blocks"][0]["mlp"]["fc1"]["kernel"].get_value()
    assert len(kernel.sharding.device_set) == 8
    assert not kernel.sharding.is_fully_replicated
    np.testing.assert_allclose(sharded_losses, single_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(single["model"]), jax.tree.leaves(sharded["model"])):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_checkpoint_round_trip_is_exact(tmp_path):
    trainer = Trainer(_config((2, 4, 1)), str(tmp_path))
    state, _ = _run_steps(trainer, 2)
    checkpointer = Checkpointer(str(tmp_path), every=1, keep=1)
    trainer.save(checkpointer, 2, state, {"next_index": 64})
    checkpointer.wait()
    restored, data_state, step = trainer.restore(checkpointer, 2)
    checkpointer.close()
    assert step == 2 and data_state == {"next_index": 64}
    leaves_a = jax.tree.leaves(state)
    leaves_b = jax.tree.leaves(restored)
    assert len(leaves_a) == len(leaves_b) > 10
    for a, b in zip(leaves_a, leaves_b):
        assert a.sharding == b.sharding
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_from_with_a_different_head(tmp_path):
    source = _config(steps=2)
    source.model.num_classes = 5  # a 5-way head; the target has 10 classes
    Trainer(source, str(tmp_path / "src")).train()
    target = _config(steps=1)
    target.init_from.path = str(tmp_path / "src")
    target.init_from.skip = ("posemb",)
    trainer = Trainer(target, str(tmp_path / "dst"))
    checkpointer = Checkpointer(str(tmp_path / "dst"), every=1, keep=1)
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    state, step = trainer.restore_or_init(checkpointer, data)
    checkpointer.close()
    assert step == 0
    loaded = read_model_params(str(tmp_path / "src"))
    model = state["model"]
    np.testing.assert_array_equal(
        model["blocks"][1]["attn"]["query"]["kernel"].get_value(),
        loaded["blocks"]["1"]["attn"]["query"]["kernel"],
    )
    assert model["head"]["kernel"].get_value().shape == (64, 10)
    assert np.all(np.asarray(model["head"]["kernel"].get_value()) == 0)  # fresh (zero) init
    fresh = trainer.init_state()["model"]
    np.testing.assert_array_equal(model["posemb"].get_value(), fresh["posemb"].get_value())
    assert not np.array_equal(model["posemb"].get_value(), loaded["posemb"])


def test_nan_guard_keeps_only_checkpoints_that_train_on(tmp_path):
    # lr 0 at step 1 (warmup), then 3e37: the update of step 2 poisons the params, while the
    # loss logged for step 2 (computed before that update) is still finite.
    config = _config(steps=6, checkpoint_every=1, log_every=1)
    config.optimizer.update(learning_rate=1e38, clip_norm=0.0)
    config.schedule.warmup_steps = 3
    trainer = Trainer(config, str(tmp_path))
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 2") as info:
        trainer.train()
    checkpointer = Checkpointer(str(tmp_path), every=1, keep=10)
    good = checkpointer.latest_step()
    assert good == 1 and f"last good checkpoint: step {good}" in str(info.value)
    state, data_state, _ = trainer.restore(checkpointer, good)
    checkpointer.close()
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    data.set_state(data_state)
    sane = _config()
    sane.optimizer.clip_norm = 0.0  # the same optimizer state layout, a sane learning rate
    resumed = Trainer(sane, str(tmp_path))
    for _ in range(2):  # resuming from "last good" trains on
        state, metrics = resumed.train_step(state, next(data))
        assert np.isfinite(float(metrics["loss"]))


def test_resume_keeps_one_metrics_row_per_step(tmp_path):
    config = _config(steps=4, checkpoint_every=2, log_every=1, eval_every=2)
    trainer = Trainer(config, str(tmp_path))  # one trainer: its jitted steps compile once
    trainer.train()
    shutil.rmtree(tmp_path / "checkpoints" / "4")  # as if killed before saving step 4
    trainer.train()  # resumes at 2, redoes steps 3 and 4
    trainer.train()  # a finished run: reports its eval again
    rows = read_metrics(str(tmp_path / "metrics.jsonl"))
    keys = [(r["split"], r["step"]) for r in rows]
    assert sorted(keys) == sorted([("train", s) for s in (1, 2, 3, 4)] + [("eval", 2), ("eval", 4)])
    assert os.path.getsize(tmp_path / "curves.png") > 0


def test_nan_guard_cli_is_one_line(tmp_path):
    result = cli(
        "attnzoo.train",
        "--config=vit_tiny_digits:smoke",
        f"--workdir={tmp_path}",
        "--config.train.steps=4",
        "--config.optimizer.learning_rate=1e38",
        "--config.optimizer.clip_norm=0",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: loss became nan")


def test_evaluate_matches_an_independent_count_with_a_partial_last_batch(tmp_path):
    trainer = Trainer(_config(eval_batch_size=16), str(tmp_path))  # 37 = 16 + 16 + 5
    state, _ = _run_steps(trainer, 3)
    metrics = trainer.evaluate(state, "test[:37]")
    batch = next(
        iter(
            data.make_dataset(
                "digits",
                "test[:37]",
                batch_size=37,
                shuffle=False,
                repeat=False,
                seed=0,
                drop_remainder=False,
            )
        )
    )
    labels = np.asarray(batch["label"])
    assert labels.shape == (37,)
    logits = np.asarray(trainer.model(state["model"])(batch["image"]), np.float64)
    assert np.abs(logits).max() > 1e-3  # a trained head, not the zero init
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    want_loss = -log_probs[np.arange(37), labels].mean()
    want_accuracy = np.sum(logits.argmax(-1) == labels) / 37
    assert metrics["accuracy"] == pytest.approx(want_accuracy, abs=1e-9)
    assert metrics["loss"] == pytest.approx(want_loss, rel=1e-5)
