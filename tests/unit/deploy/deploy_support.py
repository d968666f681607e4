"""Helpers for the deploy/ checks: paths, and the deploy scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def load_deploy_module(relpath: str) -> ModuleType:
    """Import a script of deploy/ (not a package) by its path, once."""
    path = DEPLOY / relpath
    name = "riskflow_deploy_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
