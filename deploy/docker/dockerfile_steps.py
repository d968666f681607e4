"""The install steps of deploy/docker/Dockerfile, as data, for running them outside Docker.

``check_install.sh`` calls this to learn what to copy and what to run, so the
Dockerfile stays the one place the install steps are written. It reads the
build stage (the first ``FROM``) up to the ``# <<< install`` marker:

* ``COPY src... dest`` lines before ``# >>> install`` (the build context to stage),
* ``RUN`` lines between ``# >>> install`` and ``# <<< install`` (the commands),
* ``ARG`` / ``ENV`` of that stage (names and defaults; the script overrides some).

Usage: ``python dockerfile_steps.py [DOCKERFILE]`` prints the steps as JSON.

>>> steps = parse_dockerfile('''FROM python:3.11-slim AS build
... ARG INDEX=https://example.invalid/simple
... ENV VIRTUAL_ENV=/opt/venv \\\\
...     PIP_NO_CACHE_DIR=1
... WORKDIR /src
... COPY a.toml b.txt ./
... # >>> install
... RUN python -m venv "$VIRTUAL_ENV"
... RUN "$VIRTUAL_ENV/bin/python" -m pip install \\\\
...       -c b.txt .
... # <<< install
... FROM python:3.11-slim
... RUN echo runtime only
... ''')
>>> steps.copies
[(['a.toml', 'b.txt'], './')]
>>> steps.runs
['python -m venv "$VIRTUAL_ENV"', '"$VIRTUAL_ENV/bin/python" -m pip install -c b.txt .']
>>> steps.args, steps.env
({'INDEX': 'https://example.invalid/simple'}, {'VIRTUAL_ENV': '/opt/venv', 'PIP_NO_CACHE_DIR': '1'})
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["InstallSteps", "parse_dockerfile", "BEGIN", "END"]

BEGIN = "# >>> install"
END = "# <<< install"


class DockerfileError(ValueError):
    """The Dockerfile lacks what check_install.sh needs (markers, a build stage, ...)."""


@dataclass
class InstallSteps:
    """What the build stage copies and runs, in order."""

    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _logical_lines(text: str) -> list[str]:
    """Instructions with continuations joined; comment lines kept only when they are markers."""
    out: list[str] = []
    pending: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if line in (BEGIN, END) and not pending:
                out.append(line)
            continue  # comments, also inside continuations, are dropped (as Docker does)
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        out.append(" ".join(p for p in pending if p))
        pending = []
    if pending:
        raise DockerfileError(
            "the Dockerfile ends inside a line continuation (a trailing backslash)"
        )
    return out


def _assignments(body: str) -> dict[str, str]:
    out = {}
    for word in shlex.split(body):
        name, eq, value = word.partition("=")
        out[name] = value if eq else ""
    return out


def parse_dockerfile(text: str) -> InstallSteps:
    """The install steps of the Dockerfile source ``text`` (see the module docstring)."""
    steps = InstallSteps()
    stage = 0
    section = "before"
    for line in _logical_lines(text):
        if line == BEGIN:
            if stage != 1 or section != "before":
                raise DockerfileError(f"{BEGIN!r} must appear once, inside the first (build) stage")
            section = "install"
            continue
        if line == END:
            if section != "install":
                raise DockerfileError(f"{END!r} without a preceding {BEGIN!r}")
            section = "after"
            continue
        op, _, body = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stage += 1
            continue
        if stage != 1 or section == "after":
            continue
        if op == "ARG":
            steps.args.update(_assignments(body))
        elif op == "ENV":
            steps.env.update(_assignments(body))
        elif op == "WORKDIR":
            steps.workdir = body.strip()
        elif op == "COPY":
            words = [w for w in shlex.split(body) if not w.startswith("--")]
            if section == "install":
                raise DockerfileError(
                    f"COPY inside the install block: {line!r}; move it above {BEGIN!r}"
                )
            steps.copies.append((words[:-1], words[-1]))
        elif op == "RUN" and section == "install":
            steps.runs.append(body.strip())
        elif section == "install":
            raise DockerfileError(f"only RUN lines belong in the install block, got {line!r}")
    if section != "after":
        raise DockerfileError(f"the build stage needs a {BEGIN!r} ... {END!r} block")
    if not steps.runs:
        raise DockerfileError("the install block has no RUN line")
    return steps


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("Dockerfile")
    print(json.dumps(asdict(parse_dockerfile(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
