"""docs/ARCHITECTURE.md's import table is the code's: allowed imports only, no cycle."""

from __future__ import annotations

import ast
import re

from conftest import REPO, parse_source

PKG = REPO / "towerplan"
ALWAYS = {"errors", "towerplan"}  # the error hierarchy and the root's __version__


def _unit(module: str) -> str:
    """``towerplan.x.y`` -> ``x`` (flat module or subpackage); ``towerplan`` -> itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "towerplan"


def _imports() -> dict[str, set[str]]:
    """Unit -> towerplan units it imports (module level or in functions; ``TYPE_CHECKING`` too)."""
    out: dict[str, set[str]] = {}
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG)
        if rel.parts[0] in ("__init__.py", "__main__.py"):
            continue
        src = _unit("towerplan." + rel.with_suffix("").as_posix().replace("/", "."))
        seen = out.setdefault(src, set())
        for node in ast.walk(parse_source(f.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "towerplan":
                    names = [f"towerplan.{a.name}" for a in node.names]
                elif node.module.startswith("towerplan."):
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("towerplan.")]
            for name in names:
                unit = "towerplan" if name == "towerplan.__version__" else _unit(name)
                if unit != src:
                    seen.add(unit)
    return out


def _table() -> dict[str, set[str]]:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Packages and what each may import")[1].split("\n## ")[0]
    rules: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rules[cells[0].strip("`")] = set(re.findall(r"`([\w.]+)`", cells[2]))
    return rules


def test_every_unit_is_in_the_table_and_imports_only_what_it_may() -> None:
    rules, imports = _table(), _imports()
    assert len(rules) >= 15
    assert set(imports) <= set(rules), f"units missing from the table: {set(imports) - set(rules)}"
    bad = {
        u: sorted(got - rules[u] - ALWAYS) for u, got in imports.items() if got - rules[u] - ALWAYS
    }
    assert not bad, f"imports not allowed by docs/ARCHITECTURE.md: {bad}"
    # every table entry names real units
    for u, allowed in rules.items():
        assert allowed <= set(rules), (u, allowed - set(rules))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return [*stack[stack.index(v) :], v]
            if v not in state and (found := visit(v)):
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_no_import_cycle_in_code_or_table() -> None:
    code = {u: {v for v in vs if v != "towerplan"} for u, vs in _imports().items()}
    assert _cycle(code) is None, f"import cycle: {' -> '.join(_cycle(code) or [])}"
    assert _cycle(_table()) is None
    # the detector finds a planted cycle
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


MAX_FUNCTION_LINES = 120
"""The house rule (issue 8): no function in the package longer than this, docstring included."""


def test_no_function_over_the_house_limit() -> None:
    long = []
    for f in sorted(PKG.rglob("*.py")):
        for node in ast.walk(parse_source(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{f.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these functions: " + "; ".join(long)


def test_no_blas_reductions_in_the_solvers() -> None:
    """Dense dot products go through BLAS, whose sums depend on the thread count and
    the CPU kernel; a solver's decisions and reported figures must not (issue 9: the same
    outputs on any machine).  numpy's own ``(a * b).sum()`` or scipy.sparse products are
    used instead."""
    banned = {"dot", "vdot", "inner", "matmul", "tensordot", "einsum"}
    found = []
    for sub in ("siting", "infrastructure"):
        for f in sorted((PKG / sub).rglob("*.py")):
            for node in ast.walk(parse_source(f.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in banned
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in {"np", "numpy"}
                ):
                    found.append(f"{f.relative_to(REPO)}:{node.lineno} np.{node.func.attr}")
    assert not found, "BLAS reductions in the solvers: " + "; ".join(found)
