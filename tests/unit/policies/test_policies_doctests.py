from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["decide", "cost", "static", "controller", "guardrails", "artifact", "streaming"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    mod = importlib.import_module(f"riskflow.policies.{name}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
