"""Docstring examples of the models package run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "riskflow.models._split",
    "riskflow.models._synthetic",
    "riskflow.models._calibration",
    "riskflow.models._ensemble",
    "riskflow.models._scorer",
    "riskflow.models._mlp_kernels",
    "riskflow.models._threads",
    "riskflow.models._topk",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
