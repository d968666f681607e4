"""Docstring examples are documentation: they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "riskflow.schema",
    "riskflow.batch",
    "riskflow.config",
    "riskflow.security",
    "riskflow.mapping",
    "riskflow.memory",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
