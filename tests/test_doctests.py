"""The Examples sections of the public API run (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["towerplan", "towerplan._validate", "towerplan.plan"]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 2, f"{name}: no examples found"
    assert res.failed == 0
