"""The vision attention notebook executes end to end (tiny models, two steps)."""

import os

import nbclient
import nbformat
import pytest

from tests.helpers import REPO

TINY_VIT = '"model.width": "32", "model.num_heads": "2", "model.mlp_dim": "64"'
SMALL_RUN = (
    '"train.batch_size": "16", "train.eval_batch_size": "64", "data.eval_split": "test[:64]"'
)


def test_vision_attention_notebook_runs(tmp_path):
    if not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    nb = nbformat.read(os.path.join(REPO, "colab", "vision_attention.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'STEPS = 2\nWORKDIR = r"{tmp_path / "runs"}"\n'
        "OVERRIDES = {\n"
        f'    "vit_tiny_fmnist_p4": {{"model.depth": "1", {TINY_VIT}, {SMALL_RUN}}},\n'
        f'    "vit_spa_fmnist": {{"model.depth": "2", "model.spa_blocks": "(1,)", {TINY_VIT}, '
        f"{SMALL_RUN}}},\n"
        '    "biformer_tiny_fmnist": {"model.depths": "(1, 1, 1)", '
        f'"model.widths": "(16, 32, 64)", "model.head_dim": "8", {SMALL_RUN}}},\n'
        "}"
    )
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "routed regions of the centre region" in outputs
    assert "kept fraction per SPA block" in outputs
    assert "attention rows sum to 1: True" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3
