"""Shared pytest fixtures, helpers and the test schedule.

The suite runs on every core (``-n auto --dist loadfile`` in pyproject.toml, pytest-xdist):
each test module goes to one worker, so a module- or session-scoped fixture used by one
module is built once.  :data:`EXPENSIVE_MODULES` start first, so the workers finish
together.  Each test process collects garbage less often once the tests are collected
(:func:`pytest_collection_finish`).  Reusable fixtures: :func:`demo_run` (the demo plan,
once per session), :func:`shared_data` (real data), :func:`make_districts`,
:func:`cpu_burner`; ``_city_fixture`` (Testville scenario files), ``_layers_fixture`` (plan
layers for the output tests), ``_ocid_fixture`` (OpenCelliD towers); :func:`parse_source`
(a module's AST, once per process).  A fixture that starts processes or servers must use
free ports (port 0) and its own ``tmp_path``: two workers run at once.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import gc
import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import box

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOWERPLAN_SHARED_DATA", REPO.parent / "shared" / "data"))

#: Working CRS of the generated test layers (UTM 48N) and a corner in Cần Thơ.
CRS = "EPSG:32648"
X0, Y0 = 580_000.0, 1_110_000.0


def make_districts(
    boxes: list[tuple[float, float, float, float]],
    names: list[str],
    types: list[str],
    *,
    x0: float = X0,
    y0: float = Y0,
    **columns: list[Any],
) -> gpd.GeoDataFrame:
    """District polygons from boxes relative to ``(x0, y0)``, in :data:`CRS`."""
    geoms = [box(x0 + a, y0 + b, x0 + c, y0 + d) for a, b, c, d in boxes]
    data = {"district": names, **columns, "district_type": types}
    return gpd.GeoDataFrame(data, geometry=geoms, crs=CRS)


@functools.cache
def parse_source(source: str) -> ast.Module:
    """``ast.parse(source)``, once per test process for the same text: the architecture and
    i18n tests walk every module of the package.  Read the tree; never change it."""
    return ast.parse(source)


def is_marked_message(node: ast.expr, constants: Collection[str] = ()) -> bool:
    """Whether a message expression is ``N_("literal")``, a choice between such
    (``N_(a) if c else N_(b)``) or one of ``constants`` (module names bound to one): the
    translatable form the i18n tests require of errors and warnings."""
    if isinstance(node, ast.IfExp):
        return is_marked_message(node.body, constants) and is_marked_message(node.orelse, constants)
    if isinstance(node, ast.Name):
        return node.id in constants
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "N_"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


#: Test modules with the largest set-up (CPU seconds measured with 2 workers), scheduled
#: first, largest first (longest-processing-time order); the other modules follow in
#: collection order.  A new module with a fixture over ~5 s belongs here.
EXPENSIVE_MODULES = (
    "test_batch.py",
    "test_notebook.py",
    "test_plan_custom_city.py",
    "test_plan_demo.py",
    "test_browser.py",
    "test_sheets.py",
    "test_maps.py",
    "test_plan_realdata.py",
    "test_cli_bad_input.py",
    "test_highs_timelimit.py",
    "test_export.py",
    "test_phasing.py",
    "test_siting_properties.py",
    "test_siting_determinism.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the modules of :data:`EXPENSIVE_MODULES` first, in that order (stable sort)."""
    rank = {name: k for k, name in enumerate(EXPENSIVE_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Cheaper garbage collection in each test process: what exists after collection
    (imported modules, collected tests) moves to the permanent generation, and the youngest
    generation is collected every 50,000 net allocations instead of 700.  The tests build
    many large frames; this took ~8 % off the CPU of the map, sheet and demo plan tests
    (GC 4 -> 1.7 s of 51 s).  No result depends on when cyclic garbage is collected."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


#: Siting work budget of the demo plan in the tests (``--work-limit``).  The quotas, the
#: outputs and their contracts do not depend on it; solution quality is tested on small
#: models with oracles in test_siting*.py.  The full budget costs ~20x the siting time.
DEMO_WORK_LIMIT = 0.03


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``towerplan plan --scenario cantho-2020`` once per session: ``out`` and ``summary``."""
    from towerplan.cli import main

    out = tmp_path_factory.mktemp("demo") / "cantho-2020"
    args = ["plan", "--scenario", "cantho-2020", "--out", str(out)]
    code = main([*args, "--work-limit", str(DEMO_WORK_LIMIT)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"out": out, "summary": summary}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real Cần Thơ test data (``../shared/data`` beside the repo)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@contextlib.contextmanager
def cpu_burner(n_procs: int | None = None, max_s: float = 120.0) -> Iterator[None]:
    """Saturate the cores with ``n_procs`` busy-loop subprocesses while the block runs.

    Default: one fewer than the cores, so that with the test's own process every core is
    busy (the other test worker, under xdist, adds to that).  Each process also stops by
    itself after ``max_s`` seconds; all are killed (by their own process ids) when the
    block ends.
    """
    if n_procs is None:
        n_procs = max(1, (os.cpu_count() or 2) - 1)
    code = f"import time\nt = time.time() + {max_s}\nwhile time.time() < t:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n_procs)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def random_one_op_mclp(
    seed: int, m: int, p: int, density: float, spaced: bool
) -> tuple[Any, float]:
    """A random single-operator MCLP (``3 m`` rows, ``m`` candidates, offset 2, one
    spacing pair when ``spaced``) and its brute-force optimum."""
    import itertools

    import numpy as np
    import scipy.sparse as sp

    from towerplan.siting import _mclp

    rng = np.random.default_rng(seed)
    A = rng.random((3 * m, m)) < density
    W = rng.integers(0, 9, (3 * m, 1)).astype(float)
    conf = None
    pairs: set[tuple[int, int]] = set()
    if spaced:
        a, b = sorted(rng.choice(m, 2, replace=False).tolist())
        conf = sp.csr_matrix(([True, True], ([a, b], [b, a])), shape=(m, m))
        pairs = {(a, b)}
    prob = _mclp.build_problem(sp.csr_matrix(A), W, p, 0, 1, conf, 2.0)
    best = max(
        2.0 + float(W[A[:, list(S)].any(axis=1), 0].sum())
        for S in itertools.combinations(range(m), p)
        if not any((x, y) in pairs for x in S for y in S)
    )
    return prob, best


def random_multiop_mclp(
    seed: int, quotas: tuple[int, int], spaced: bool, n: int = 60, m: int = 16, side: float = 9000.0
) -> tuple[Any, Any] | None:
    """A random 3-operator MCLP (``n`` demand points and ``m`` candidates in a square of
    ``side`` metres, radius 1,500 m, spacing pairs within 700 m when ``spaced``, tenancy
    2-3, offset 7) and its greedy solution; ``None`` when the quotas cannot be filled."""
    import numpy as np
    import scipy.sparse as sp

    from towerplan.errors import InfeasibleModelError
    from towerplan.siting import _mclp

    rng = np.random.default_rng(seed)
    cxy = rng.uniform(0, side, (m, 2))
    dxy = rng.uniform(0, side, (n, 2))
    d2 = ((dxy[:, None, :] - cxy[None, :, :]) ** 2).sum(axis=2)
    A = sp.csr_matrix(d2 < 1500.0**2)
    W = rng.gamma(2.0, 20.0, (n, 3)) * rng.random((n, 3)) ** 2
    cc = ((cxy[:, None, :] - cxy[None, :, :]) ** 2).sum(axis=2) < 700.0**2
    np.fill_diagonal(cc, False)
    conf = sp.csr_matrix(cc) if spaced and cc.any() else None
    try:
        prob = _mclp.build_problem(A, W, quotas[0], quotas[1], rng.integers(2, 4, m), conf, 7.0)
        return prob, _mclp.greedy(prob)
    except InfeasibleModelError:
        return None
