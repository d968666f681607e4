from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "_lexer",
    "_parser",
    "_compile",
    "lists",
    "ruleset",
    "apply",
    "codec",
    "live",
    "exceptions",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    mod = importlib.import_module(f"riskflow.policies.rules.{name}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
