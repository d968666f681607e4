"""Every YAML file of deploy/ passes yamllint (syntax, duplicate keys, indentation)."""

from __future__ import annotations

import pytest
from deploy_support import DEPLOY
from yamllint import linter
from yamllint.config import YamlLintConfig

CONFIG = YamlLintConfig(file=str(DEPLOY / ".yamllint.yml"))
FILES = sorted(
    p for ext in ("*.yml", "*.yaml") for p in DEPLOY.rglob(ext) if ".runtime" not in p.parts
)


def test_there_are_yaml_files():
    assert len(FILES) >= 12, FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yamllint(path):
    problems = [p for p in linter.run(path.read_text(), CONFIG, str(path)) if p.level == "error"]
    assert not problems, "\n".join(
        f"{path}:{p.line}:{p.column} {p.desc} ({p.rule})" for p in problems
    )


def test_yamllint_catches_duplicate_keys():
    # PyYAML keeps the last of two equal keys silently; in a manifest that hides a setting.
    problems = list(linter.run("a: 1\na: 2\n", CONFIG))
    assert any(p.rule == "key-duplicates" for p in problems)
