"""The Colab notebooks execute end to end (at a small size)."""

import os

import nbclient
import nbformat

from tests.helpers import REPO


def test_quickstart_notebook_runs(tmp_path):
    nb = nbformat.read(os.path.join(REPO, "colab", "quickstart.ipynb"), as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "STEPS =" in c.source)
    params.source = (
        f'STEPS = 4\nWORKDIR = r"{tmp_path / "run"}"\n'
        'OVERRIDES = {"model.depth": "2", "model.width": "96"}'
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test metrics:" in outputs and "accuracy on these 16:" in outputs
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
