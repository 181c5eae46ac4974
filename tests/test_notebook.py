"""The walkthrough notebook runs end to end (nbclient), as in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from towerplan.inputs._base import DEMO_STAMP

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_cantho_walkthrough.ipynb"


def test_walkthrough_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "new sites: 614 (338 dedicated, 276 shared)" in text
    assert "EPSG:5897" in text
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert sum(DEMO_STAMP in h for h in html) >= 2  # the two inline maps
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the sheet
