"""Every shipped config works at its tiny `:smoke` size: the first config of each family
trains one step through the engine (checkpoint, eval, selection); every other config builds
its model, loads a batch of its data and traces its train and eval steps. Compiled forward
and backward passes of every model are tests/test_models.py's; the notebooks and CLI tests
train more configs end to end."""

import math
import os

import jax
import numpy as np
import pytest

from attnzoo.configs import list_configs, load_config
from attnzoo.train_loops import partitioning
from attnzoo.train_loops.trainer import Trainer, _pad_batch

NEEDS_DATA_DIR = {"vit_tiny_fmnist", "vit_tiny_fmnist_p4", "vit_spa_fmnist", "biformer_tiny_fmnist"}
NEEDS_DATA_DIR |= {"tppgaze_nus", "oat_nus"}
NEEDS_DATA_DIR |= {"lm_tiny_shakespeare", "lm_motif_tiny_shakespeare"}
NEEDS_DATA_DIR |= {"gman_losloop", "gman_losloop_lap", "linear_losloop"}
NEEDS_DATA_DIR |= {"dit_tiny_fmnist", "scale_dit_tiny_fmnist"}


def _smoke_config(name: str):
    if name in NEEDS_DATA_DIR and not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    return load_config(f"{name}:smoke")


def _configs_by_family() -> list[list[str]]:
    """Config names grouped by family, in name order."""
    groups: dict[str, list[str]] = {}
    for name in list_configs():
        groups.setdefault(load_config(name).family, []).append(name)
    return list(groups.values())


FAMILIES = _configs_by_family()
TRAINED = [names[0] for names in FAMILIES]
TRACED = [name for names in FAMILIES for name in names[1:]]


def _first_batch(trainer: Trainer, split: str, train: bool) -> dict:
    """The split's first batch as the step sees it (an eval batch padded, with its mask)."""
    dataset = trainer.family.make_dataset(split, train=train, process_index=0, process_count=1)
    batch = next(iter(dataset))
    if not train:
        batch = _pad_batch(batch, trainer.config.train.eval_batch_size)
    return partitioning.global_batch(batch, trainer.mesh)


@pytest.mark.parametrize("name", TRACED)
def test_config_traces_its_steps_on_its_data(name, tmp_path):
    trainer = Trainer(_smoke_config(name), str(tmp_path))
    cfg = trainer.config
    with trainer._context():
        state = trainer.sharded_abstract_state()
        batch = _first_batch(trainer, cfg.data.train_split, train=True)
        new_state, metrics = jax.eval_shape(trainer._train_step, state, batch)
        assert metrics["loss"].shape == () and jax.tree.structure(new_state) == (
            jax.tree.structure(state)
        )
        eval_batch = _first_batch(trainer, cfg.data.eval_split, train=False)
        sums = jax.eval_shape(trainer._eval_step, state["model"], eval_batch)
    assert sums and all(np.shape(total) == () for total, _ in sums.values())


@pytest.mark.parametrize("name", TRAINED)
def test_smoke_run(name, tmp_path):
    results = Trainer(_smoke_config(name), str(tmp_path)).train()
    assert results and all(math.isfinite(v) for v in results.values())
    assert os.path.isdir(tmp_path / "checkpoints" / "1")
