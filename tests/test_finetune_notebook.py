"""The fine-tuning notebook executes end to end (tiny ViT, two steps per run)."""

import os

import nbclient
import nbformat
import pytest

from tests.helpers import REPO

TINY = (
    '{"model.depth": "1", "model.width": "32", "model.num_heads": "2", "model.mlp_dim": "64", '
    '"train.batch_size": "16", "train.eval_batch_size": "64", "data.eval_split": "test[:64]"}'
)

# Appended at test time: the model rebuilt from the fine-tuned workdir alone has the
# checkpoint's params, shape for shape.
CHECK_CELL = """
from flax import nnx
from attnzoo.zoo.pretrained import read_weights
from attnzoo.zoo.registry import model_spec
import jax
state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
shapes = {"/".join(str(k.key) for k in p): v.shape
          for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}
ckpt = read_weights(os.path.join(WORKDIR, "digits")).params
assert shapes == {k: v.shape for k, v in ckpt.items()}, (shapes, ckpt.keys())
assert model.grid == (8, 8) and model_spec(model)["kwargs"]["in_channels"] == 1
print("rebuilt shapes == checkpoint shapes")
"""


def test_finetune_notebook_runs(tmp_path):
    if not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the benchmark data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    nb = nbformat.read(os.path.join(REPO, "colab", "finetune.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "PRETRAIN_STEPS =" in c.source)
    params.source = (
        f'PRETRAIN_STEPS = 2\nFINETUNE_STEPS = 2\nWORKDIR = r"{tmp_path / "runs"}"\n'
        f"OVERRIDES = {TINY}"
    )
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "token grid (7, 7) -> (8, 8)" in outputs
    assert "resampled: ['posemb']" in outputs
    assert "rebuilt shapes == checkpoint shapes" in outputs
    assert "digits test metrics:" in outputs and "accuracy on these 16:" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
