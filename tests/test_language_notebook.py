"""The language notebook executes end to end (one-layer model, two steps)."""

import os

import nbclient
import nbformat

from tests.helpers import REPO


def test_language_notebook_runs(tmp_path):
    nb = nbformat.read(os.path.join(REPO, "colab", "language.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'CONFIG = "lm_tiny_pydoc"\nSTEPS = 2\nWORKDIR = r"{tmp_path / "run"}"\n'
        'PROMPT = "The for"\n'
        'OVERRIDES = {"model.width": "32", "model.depth": "1", "model.num_heads": "2", '
        '"model.num_kv_heads": "1", "data.context_len": "16", "train.batch_size": "16", '
        '"train.eval_batch_size": "64", "data.eval_split": "val[:64]"}'
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "validation:" in outputs and "bits_per_byte" in outputs
    assert "step 2: The for" in outputs
    assert "attention rows sum to 1: True" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
