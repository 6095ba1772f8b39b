"""The engine hands `Family.loss` a per-step key from (seed, step): resumed runs draw the same."""

import json
import os

import jax
import numpy as np

from attnzoo.configs import load_config
from attnzoo.train_loops.checkpointing import Checkpointer
from attnzoo.train_loops.family import step_key
from attnzoo.train_loops.trainer import Trainer


def _config():
    config = load_config("vit_tiny_digits:smoke")
    config.mesh.shape = (1, 1, 1)
    config.model.update(width=32, num_heads=2, mlp_dim=64, depth=1, dropout=0.2)
    config.train.update(steps=3, batch_size=16, checkpoint_every=1000, log_every=1)
    config.seed = 7
    return config


def _trainer_recording_draws(workdir: str) -> Trainer:
    trainer = Trainer(_config(), workdir)
    loss = trainer.family.loss

    def loss_with_draw(model, batch, rng):
        value, metrics = loss(model, batch, rng)
        return value, {**metrics, "draw": jax.random.uniform(rng)}

    trainer.family.loss = loss_with_draw  # traced at the first step
    return trainer


def _train_rows(workdir: str) -> dict[int, dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r for r in rows if r["split"] == "train"}


def test_step_key_depends_on_seed_and_step_only():
    a, b = step_key(3, 5), step_key(3, np.int32(5))
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
    assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(step_key(3, 6)))


def test_resumed_run_draws_the_same_keys(tmp_path):
    full = str(tmp_path / "full")
    _trainer_recording_draws(full).train()
    expected = _train_rows(full)
    draws = [expected[s]["draw"] for s in (1, 2, 3)]
    want = [float(jax.random.uniform(step_key(7, s))) for s in (0, 1, 2)]
    np.testing.assert_allclose(draws, want, rtol=1e-6)

    # two steps by hand, checkpoint, then a fresh trainer resumes and runs step 3
    resumed = str(tmp_path / "resumed")
    trainer = _trainer_recording_draws(resumed)
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    state = trainer.init_state()
    for _ in range(2):
        state, _ = trainer.train_step(state, next(data))
    checkpointer = Checkpointer(resumed, every=1, keep=1)
    trainer.save(checkpointer, 2, state, data.get_state())
    checkpointer.close()
    _trainer_recording_draws(resumed).train()
    row = _train_rows(resumed)[3]
    assert row["draw"] == expected[3]["draw"]
    np.testing.assert_allclose(row["loss"], expected[3]["loss"], rtol=1e-6)  # same dropout masks
