"""The four engine folders install as riskflow.* subpackages, in regular installs too."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MAPPED = {
    "riskflow.features": "features",
    "riskflow.models": "models",
    "riskflow.policies": "policies",
    "riskflow.streams": "streams",
}


def _declared() -> tuple[list[str], dict[str, str]]:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return tool["packages"], tool["package-dir"]


def test_every_package_folder_is_declared() -> None:
    packages, package_dir = _declared()
    assert {k: v for k, v in package_dir.items() if k != "riskflow"} == MAPPED
    found = set()
    for name, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    missing = found - set(packages)
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_regular_install_imports_all_subpackages(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # No pip or setuptools of its own: the build runs on the ones installed here.
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    # The throwaway venv sees the dependencies already installed here, not riskflow itself.
    here = sysconfig.get_paths()["purelib"]
    site = subprocess.check_output(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    Path(site.strip(), "deps.pth").write_text(here + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS")}
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(ROOT),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    probe = (
        "import importlib, pkgutil, riskflow, json\n"
        "names = [m.name for m in pkgutil.walk_packages(riskflow.__path__, 'riskflow.')]\n"
        "mods = {n: importlib.import_module(n).__file__ for n in names if '.commands.' not in n}\n"
        "print(json.dumps(mods))\n"
    )
    out = subprocess.run(
        [py, "-c", probe], check=True, env=env, cwd=tmp_path, capture_output=True, text=True
    )
    import json

    mods = json.loads(out.stdout)
    for pkg in [*MAPPED, "riskflow.features._kernels"]:
        assert pkg in mods, f"{pkg} not importable from the regular install"
        assert str(env_dir) in mods[pkg], f"{pkg} imported from {mods[pkg]}, not the install"
    installed = Path(site.strip())
    assert not any((installed / generic).exists() for generic in MAPPED.values()), (
        "generic top-level names leaked"
    )
    assert (env_dir / "bin" / "riskflow").exists()
    assert (installed / "riskflow" / "mappings" / "sparkov.toml").exists()
    assert sys.version_info >= (3, 11)
