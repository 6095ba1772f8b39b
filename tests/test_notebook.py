"""The Colab notebooks install only from the project's own source and run end to end (at a
small size); the quickstart's predictions are the restored checkpoint's."""

import os
import subprocess
import types

import nbclient
import nbformat
import pytest

from tests.helpers import REPO

NOTEBOOK = os.path.join(REPO, "colab", "quickstart.ipynb")

# Appended at test time: the notebook's predictions must be those of the checkpoint restored
# by the engine (a pretrained load that loaded nothing gives the zero head's logits).
CHECK_CELL = """
from attnzoo.train_loops.checkpointing import Checkpointer
checkpointer = Checkpointer(WORKDIR, every=1, keep=10)
state, _, _ = trainer.restore(checkpointer, checkpointer.latest_step())
checkpointer.close()
want = np.asarray(trainer.model(state["model"])(batch["image"]))
assert np.abs(want).max() > 1e-3, "the restored model predicts nothing"
np.testing.assert_allclose(np.asarray(model(batch["image"])), want, rtol=1e-5, atol=1e-5)
print("notebook model == restored checkpoint")
"""


def _install_cell(nb) -> str:
    return next(c.source for c in nb.cells if c.cell_type == "code" and "pip" in c.source)


def _run_install_cell(source: str, monkeypatch, tmp_path, **overrides) -> list:
    """Runs the install cell as if attnzoo were missing; returns the pip commands run."""
    calls = []
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.chdir(tmp_path)
    for name, value in overrides.items():
        source = source.replace(f'{name} = ""', f"{name} = {value!r}", 1)
    exec(compile(source, "install_cell", "exec"), vars(types.ModuleType("cell")))
    return calls


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(REPO, "colab"))))
def test_install_cell_uses_the_configured_source_only(name, monkeypatch, tmp_path):
    source = _install_cell(nbformat.read(os.path.join(REPO, "colab", name), as_version=4))
    url = "git+https://example.org/owner/attnzoo.git"
    calls = _run_install_cell(source, monkeypatch, tmp_path, ATTNZOO_SOURCE=url)
    assert len(calls) == 1 and calls[0][-1] == url and "attnzoo" not in calls[0][:-1]
    with pytest.raises(RuntimeError, match="set ATTNZOO_SOURCE"):
        _run_install_cell(source, monkeypatch, tmp_path)  # no source: no bare-name install


def test_quickstart_notebook_runs(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'STEPS = 4\nWORKDIR = r"{tmp_path / "run"}"\n'
        'OVERRIDES = {"model.depth": "2", "model.width": "96"}'
    )
    nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test metrics:" in outputs and "accuracy on these 16:" in outputs
    assert "notebook model == restored checkpoint" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the curves and the predictions


def test_timeseries_notebook_runs(tmp_path):
    nb = nbformat.read(os.path.join(REPO, "colab", "timeseries.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'STEPS = 2\nWORKDIR = r"{tmp_path / "run"}"\n'
        'OVERRIDES = {"model.patch_sizes": "((32, 48),)", "model.k": "1", "model.d_ff": "8"}'
    )
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test metrics of the best checkpoint:" in outputs
    assert "seasonal_naive: MSE" in outputs and "chosen patch sizes" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the forecasts and the router's gates


def test_gaze_notebook_runs(tmp_path):
    if not os.environ.get("ATTNZOO_DATA_DIR"):
        pytest.skip("needs the NUS data: set ATTNZOO_DATA_DIR (CI sets ../shared/data)")
    nb = nbformat.read(os.path.join(REPO, "colab", "gaze.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'STEPS = 2\nWORKDIR = r"{tmp_path / "run"}"\nIMAGES = 2\n'
        'OVERRIDES = {"model.patch_size": "32", "model.backbone_width": "16", '
        '"model.backbone_depth": "1", "model.backbone_heads": "2", "model.feature_channels": "4", '
        '"model.d_model": "16", "model.num_layers": "1", "model.num_heads": "2", '
        '"model.mlp_dim": "32", "model.position_components": "4", "train.batch_size": "16", '
        '"train.eval_batch_size": "64", "data.eval_split": "test[:4]", "select.split": "val[:4]"}'
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test metrics of the best checkpoint:" in outputs
    assert "TPP-Gaze: ScanMatch" in outputs and "centre bias: ScanMatch" in outputs
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
