"""The diffusion notebook executes end to end (tiny models, one step, two sampling steps)."""

import os

import nbclient
import nbformat
import pytest

from tests.helpers import REPO

TINY = (
    '"model.hidden_size": "32", "model.depth": "1", "model.num_heads": "2", '
    '"train.batch_size": "16", "train.eval_batch_size": "64", "data.eval_split": "test[:64]"'
)


def test_diffusion_notebook_runs(tmp_path):
    if not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    nb = nbformat.read(os.path.join(REPO, "colab", "diffusion.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        "STEPS = 1\nSAMPLE_STEPS = 2\nGUIDANCE = 4.0\nSCALE = 2\n"
        f'WORKDIR = r"{tmp_path / "runs"}"\n'
        f"OVERRIDES = {{\n    'dit_tiny_fmnist': {{{TINY}}},\n"
        f"    'scale_dit_tiny_fmnist': {{{TINY}}},\n}}"
    )
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "DiT samples: (40, 32, 32, 1)" in outputs
    assert "Scale-DiT samples: (2, 64, 64, 1)" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
