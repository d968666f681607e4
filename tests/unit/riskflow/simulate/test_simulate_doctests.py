"""Docstring examples of the simulator are documentation: they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "riskflow.simulate",
    "riskflow.simulate.config",
    "riskflow.simulate.engine",
    "riskflow.simulate._strings",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
