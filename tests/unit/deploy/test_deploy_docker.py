"""deploy/docker: the Dockerfile, parsed by Docker's own parser, and the outside-Docker install check."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib

import dockerfile
import pytest
from deploy_support import DEPLOY, ROOT, load_deploy_module

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
steps_mod = load_deploy_module("docker/dockerfile_steps.py")


def _instructions(path=DOCKERFILE):
    return dockerfile.parse_file(str(path))


def _stages(path=DOCKERFILE):
    stages: list[list] = []
    for ins in _instructions(path):
        if ins.cmd.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _squash(s: str) -> str:
    return " ".join(s.split())


def test_our_parser_agrees_with_dockers():
    """check_install.sh runs what dockerfile_steps.py finds; Docker's parser must find the same."""
    ours = steps_mod.parse_dockerfile(DOCKERFILE.read_text())
    build = _stages()[0]
    lines = DOCKERFILE.read_text().splitlines()
    begin = lines.index(steps_mod.BEGIN) + 1
    end = lines.index(steps_mod.END) + 1
    runs = [
        _squash(i.value[0]) for i in build if i.cmd.upper() == "RUN" and begin < i.start_line < end
    ]
    copies = [
        (list(i.value[:-1]), i.value[-1])
        for i in build
        if i.cmd.upper() == "COPY" and i.start_line < begin
    ]
    assert [_squash(r) for r in ours.runs] == runs
    assert [(list(s), d) for s, d in ours.copies] == copies
    assert ours.workdir == next(i.value[0] for i in build if i.cmd.upper() == "WORKDIR")
    # Nothing after the install block in the build stage may change what gets installed.
    assert not [i for i in build if i.cmd.upper() in ("RUN", "COPY", "ADD") and i.start_line > end]


def test_install_steps_use_the_pinned_versions_and_the_cpu_torch_index():
    steps = steps_mod.parse_dockerfile(DOCKERFILE.read_text())
    pip_runs = [r for r in steps.runs if " pip install " in r]
    assert pip_runs, steps.runs
    for run in pip_runs:
        assert "-c constraints.txt" in run, f"pip install without the constraints file: {run}"
    torch = [r for r in pip_runs if re.search(r"\btorch\b", r)]
    assert len(torch) == 1 and '--index-url "$TORCH_INDEX_URL"' in torch[0]
    assert steps.args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert steps.env["PIP_NO_CACHE_DIR"] == "1"  # as ENV, so check_install.sh can unset it
    assert any("smoke.py" in r for r in steps.runs), "the image build must smoke-test the install"


def test_every_installed_folder_is_copied_and_not_ignored():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    steps = steps_mod.parse_dockerfile(DOCKERFILE.read_text())
    copied = {src for srcs, _ in steps.copies for src in srcs}
    assert folders <= copied, (
        f"pyproject installs {sorted(folders - copied)}, the Dockerfile does not copy them"
    )
    assert {"pyproject.toml", "README.md", "constraints.txt"} <= copied
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repo"
        ignored = False
        for pat in patterns:  # last match wins, as in .dockerignore
            neg = pat.startswith("!")
            body = pat[1:] if neg else pat
            if fnmatch.fnmatch(src, body.rstrip("/")) or src == body.rstrip("/"):
                ignored = not neg
        assert not ignored, f"COPY {src} is excluded by Dockerfile.dockerignore"


def test_runtime_stage_is_non_root_with_the_riskflow_entrypoint():
    final = _stages()[-1]
    by_cmd = {}
    for ins in final:
        by_cmd.setdefault(ins.cmd.upper(), []).append(ins)
    user = by_cmd["USER"][-1].value[0]
    assert user.split(":")[0] not in ("0", "root"), user
    assert user.split(":")[0].isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    assert by_cmd["ENTRYPOINT"][-1].value == ("riskflow",)
    assert by_cmd["CMD"][-1].value[0] == "worker"
    copy_from_build = [i for i in by_cmd["COPY"] if "--from=build" in i.flags]
    assert copy_from_build and copy_from_build[0].value == ("/opt/riskflow", "/opt/riskflow")
    assert not any("pip install" in i.value[0] for i in by_cmd.get("RUN", [])), (
        "install in the build stage"
    )
    health = by_cmd["HEALTHCHECK"][-1]
    assert "/health" in health.original
    env = " ".join(i.original for i in by_cmd["ENV"])
    assert "NUMBA_CACHE_DIR=" in env and "RISKFLOW_STREAM__STATE_DIR=" in env


def test_model_image_is_built_on_the_worker_image():
    ins = _instructions(DEPLOY / "docker" / "Dockerfile.model")
    assert [i.cmd.upper() for i in ins] == ["ARG", "FROM", "COPY"]
    assert ins[1].value[0] == "${RISKFLOW_IMAGE}"
    assert "--chown=10001:10001" in ins[2].flags
    assert ins[2].value[-1] == "/models/current/"


def test_check_install_runs_exactly_the_dockerfiles_steps():
    out = subprocess.run(
        [str(DEPLOY / "docker" / "check_install.sh"), "--print"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    steps = steps_mod.parse_dockerfile(DOCKERFILE.read_text())
    assert [line.removeprefix("RUN ") for line in out if line.startswith("RUN ")] == steps.runs
    assert len([line for line in out if line.startswith("COPY ")]) == len(steps.copies)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x AS build\nRUN pip install .\n", "needs a"),
        ("FROM x AS build\n# >>> install\nRUN a\n", "needs a"),
        ("FROM x AS build\n# >>> install\nCOPY a b\n# <<< install\n", "COPY inside"),
        ("FROM x AS build\n# >>> install\n# <<< install\n", "no RUN"),
        ("FROM x\nFROM y\n# >>> install\nRUN a\n# <<< install\n", "first (build) stage"),
        ("FROM x AS build\n# >>> install\nRUN a \\\n", "continuation"),
    ],
)
def test_parser_rejects_dockerfiles_without_a_clear_install_block(text, message):
    with pytest.raises(steps_mod.DockerfileError, match=re.escape(message)):
        steps_mod.parse_dockerfile(text)
