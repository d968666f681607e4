"""Smoke test of an installed riskflow (the image's last build step, and check_install.sh's).

Imports every module of the installed ``riskflow`` distribution (so a package
missing from pyproject's list, or a dependency missing from the install, fails
here and not in production) and runs ``riskflow --help`` through the console
script. Run it with the environment's own interpreter, from outside the source
tree's import path: it refuses to test a source checkout instead of the install.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import sysconfig
from pathlib import Path


def main() -> int:
    import riskflow

    installed = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(riskflow.__file__).resolve()
    if installed not in where.parents:
        print(f"smoke: riskflow imported from {where}, not from {installed}", file=sys.stderr)
        return 1
    names = ["riskflow"]
    for mod in pkgutil.walk_packages(riskflow.__path__, "riskflow."):
        if mod.name.rsplit(".", 1)[-1] != "__main__":
            names.append(mod.name)
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - report every failure, then fail
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    packages = sorted(n for n in names if hasattr(sys.modules.get(n), "__path__"))
    for subpackage in ("features", "models", "policies", "streams"):
        if f"riskflow.{subpackage}" not in packages:
            failed.append(f"riskflow.{subpackage}: not installed")
    cli = Path(sys.executable).with_name("riskflow")
    run = subprocess.run([str(cli), "--help"], capture_output=True, text=True)
    if run.returncode != 0 or "worker" not in run.stdout:
        failed.append(f"{cli} --help: exit {run.returncode}\n{run.stdout}{run.stderr}")
    if failed:
        print("smoke: FAILED\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print(f"smoke: {len(names)} modules in {len(packages)} packages import; riskflow --help works")
    print("smoke: packages " + " ".join(packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
