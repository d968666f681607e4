"""Topic role selection and display helpers (no network)."""

from __future__ import annotations

import pytest

from riskflow.commands.topics import _human_ms
from riskflow.config import Config
from riskflow.errors import ConfigError
from riskflow.topics import TopicInfo, TopicStatus, resolve_roles


def test_roles_default_to_all_in_config_order():
    assert resolve_roles(Config(), None) == [
        "transactions",
        "labels",
        "decisions",
        "dead_letter",
        "policy",
        "rules",
    ]


def test_roles_are_validated_and_deduplicated():
    assert resolve_roles(Config(), ["policy", "labels", "policy"]) == ["policy", "labels"]
    with pytest.raises(ConfigError, match="Unknown topic role 'decision'. Roles are: transactions"):
        resolve_roles(Config(), ["decision"])


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (-1, "forever"),
        (7 * 86_400_000, "7d"),
        (3_600_000, "1h"),
        (90_000, "90s"),
        (1500, "1500ms"),
    ],
)
def test_human_retention(ms, text):
    assert _human_ms(ms) == text


def test_results_are_json_ready():
    s = TopicStatus("labels", "riskflow.labels", "exists", 6, ("has 3 partitions, config says 6",))
    assert s.to_dict()["problems"] == ["has 3 partitions, config says 6"]
    assert TopicInfo("t", None, False).to_dict()["partitions"] is None
