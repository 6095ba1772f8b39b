"""Every shipped config trains one step at its tiny `:smoke` size and evaluates."""

import math
import os

import pytest

from attnzoo.configs import list_configs, load_config
from attnzoo.train_loops.trainer import Trainer

NEEDS_DATA_DIR = {"vit_tiny_fmnist", "vit_tiny_fmnist_p4", "vit_spa_fmnist", "biformer_tiny_fmnist"}
NEEDS_DATA_DIR |= {"tppgaze_nus", "oat_nus"}
NEEDS_DATA_DIR |= {"lm_tiny_shakespeare", "lm_motif_tiny_shakespeare"}
NEEDS_DATA_DIR |= {"gman_losloop", "gman_losloop_lap", "linear_losloop"}
NEEDS_DATA_DIR |= {"dit_tiny_fmnist", "scale_dit_tiny_fmnist"}


@pytest.mark.parametrize("name", list_configs())
def test_smoke_run(name, tmp_path):
    if name in NEEDS_DATA_DIR and not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    results = Trainer(load_config(f"{name}:smoke"), str(tmp_path)).train()
    assert results and all(math.isfinite(v) for v in results.values())
    assert os.path.isdir(tmp_path / "checkpoints" / "1")
