"""The walkthrough notebook runs end to end (nbclient), as in CI.

The notebook runs the whole demo plan; the test gives it a small siting work budget,
no best-server raster and a 400 m demand grid (a sixteenth of the cells; the site quotas
do not depend on it) in a cell injected after the first one, so it checks the
notebook's code, not the solver (tested in test_siting*.py) nor the 100 m demo
figures (test_plan_demo.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DEMO_WORK_LIMIT

from towerplan._i18n import _, use_language
from towerplan.inputs._base import DEMO_STAMP
from towerplan.scenario import load_scenario

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_cantho_walkthrough.ipynb"


FAST = f"""\
import dataclasses
import functools

scenario = dataclasses.replace(
    scenario, demand=dataclasses.replace(scenario.demand, cell_size_m=400.0)
)
run_plan = functools.partial(run_plan, work_limit={DEMO_WORK_LIMIT}, best_server=False)
"""


@pytest.mark.slow
def test_walkthrough_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "from towerplan import run_plan" in nb.cells[1].source
    nb.cells.insert(2, nbformat.v4.new_code_cell(FAST))
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "new sites: 614 (338 dedicated, 276 shared)" in text
    assert "EPSG:5897" in text
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # the two inline maps carry the demo stamp in the scenario's language (cantho-2020: vi),
    # JSON-escaped inside the map's srcdoc
    with use_language(load_scenario("cantho-2020").language):
        stamp = json.dumps(_(DEMO_STAMP))[1:-1]
    assert sum(stamp in h for h in html) >= 2
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the sheet
