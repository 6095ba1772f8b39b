"""The traffic notebook executes end to end (GMAN at smoke size, two steps)."""

import os

import nbclient
import nbformat
import pytest

from tests.helpers import REPO

SMALL = (
    '"model.num_blocks": "1", "model.num_heads": "2", "model.head_dim": "4", '
    '"data.spatial_embedding.dim": "8", "train.batch_size": "16", '
    '"train.eval_batch_size": "64", "data.eval_split": "test[:64]", "select.split": "val[:64]"'
)


def test_traffic_notebook_runs(tmp_path):
    if not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    nb = nbformat.read(os.path.join(REPO, "colab", "traffic.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = f'STEPS = 2\nWORKDIR = r"{tmp_path / "runs"}"\nOVERRIDES = {{{SMALL}}}'
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "historical average: 15min: MAE" in outputs
    assert "attention rows sum to 1: True" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
