"""docs/notebooks/quickstart.ipynb runs from top to bottom (on real MNIST): it cannot rot unnoticed."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from src.config.compose import PROJECT_ROOT
from tests.conftest import SHARED_DATA

NOTEBOOK = PROJECT_ROOT / "docs" / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path, monkeypatch):
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST not found in {SHARED_DATA / 'MNIST' / 'raw'} (set DATA_DIR)")
    monkeypatch.setenv("DATA_DIR", str(SHARED_DATA.resolve()))
    monkeypatch.chdir(NOTEBOOK.parent)  # as Jupyter runs it: in its own folder
    monkeypatch.setenv("NOTEBOOK_OUTPUT", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "test accuracy 0.9" in printed, printed
    assert printed.count("predicted [(") == 4
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the pool1 feature maps
    assert (tmp_path / "run" / "metrics.json").is_file() and os.listdir(tmp_path)
