"""Lists, the topic codec, rule-set files."""

from __future__ import annotations

import numpy as np
import pytest

from riskflow.batch import hash_keys
from riskflow.policies.rules import ListEntry, ListError, ListStore, RuleError, RuleSet
from riskflow.policies.rules.codec import (
    decode,
    encode_list_put,
    encode_list_remove,
    encode_ruleset,
    encode_ruleset_clear,
)


def test_a_card_number_is_refused_and_never_echoed() -> None:
    with pytest.raises(ListError) as info:
        ListEntry("deny", "card", "4111 1111 1111 1111")
    assert "4111" not in str(info.value) and "token" in str(info.value)
    ListEntry("deny", "card", "tok_4111")  # a token is fine


@pytest.mark.parametrize(
    ("kind", "value", "match"),
    [("planet", "x", "Unknown list kind"), ("country", "DEU", "2-letter"), ("bin", "12", "6 to 8")],
)
def test_bad_entries_say_what_is_allowed(kind: str, value: str, match: str) -> None:
    with pytest.raises(ListError, match=match):
        ListEntry("deny", kind, value)
    with pytest.raises(ListError, match="list name"):
        ListEntry("Deny!", "ip", "1.2.3.4")


def test_store_membership_removal_and_duplicates() -> None:
    s = ListStore()
    s.put(ListEntry("deny", "country", "ng", expires_at=100))
    s.put(ListEntry("deny", "country", "NG"))  # same entry, now without expiry
    s.put(ListEntry("watch", "device", "d1"))
    assert len(s) == 2
    keys = hash_keys(["NG", "DE", "NG"])
    ts = np.array([50, 50, 500])
    assert s.snapshot().member("deny", "country", keys, ts).tolist() == [True, False, True]
    assert s.remove("deny", "country", "ng") and not s.remove("deny", "country", "ng")
    assert not s.snapshot().member("deny", "country", keys, ts).any()
    assert [e.value for e in s.entries("watch")] == ["d1"]


def test_codec_round_trips_and_tombstones() -> None:
    e = ListEntry("deny", "ip", "2001:db8::1", reason="r", added_by="ana")
    k, v = encode_list_put(e)
    assert decode(k, v).entry == e
    k2, v2 = encode_list_remove("deny", "ip", "2001:db8::1")
    assert k2 == k and v2 is None
    upd = decode(k2, v2)
    assert upd.kind == "list_remove" and upd.ident == ("deny", "ip", "2001:db8::1")
    rs = RuleSet.from_toml(
        'version = "v7"\n[[rule]]\nid = "a"\nwhen = "amount > 1"\naction = "tag"'
    )
    got = decode(*encode_ruleset(rs, published_by="ana")).ruleset
    assert got == rs and got.version == "v7"
    assert decode(*encode_ruleset_clear()).kind == "ruleset_clear"
    for key, val in [(b"nonsense", b"{}"), (b"ruleset", b"{oops"), (k, b"[1]")]:
        with pytest.raises(RuleError):
            decode(key, val)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[rule]]\nid = "a"\nwhen = "amount > 1"\naction = "block"', "must be one of"),
        (
            '[[rule]]\nid = "a"\nwhen = "amount > 1"\naction = "tag"\nmode = "dry"',
            "active or shadow",
        ),
        (
            '[[rule]]\nid = "a"\nwhen = "x"\naction = "tag"\n[[rule]]\nid = "a"\nwhen = "x"\naction = "tag"',
            "unique",
        ),
        ('[[rule]]\nid = "a"\naction = "tag"', "missing when"),
        ('[[rule]]\nid = "a"\nwhen = "x"\naction = "tag"\nprio = 1', "unknown key"),
        ("rules = 1", "Unknown top-level"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_rule_files_are_validated(text: str, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        RuleSet.from_toml(text)


def test_version_defaults_to_a_content_hash_and_priority_orders_evaluation() -> None:
    text = (
        '[[rule]]\nid = "late"\nwhen = "amount > 1"\naction = "tag"\npriority = 9\n'
        '[[rule]]\nid = "early"\nwhen = "amount > 1"\naction = "tag"\npriority = 1\n'
    )
    a, b = RuleSet.from_toml(text), RuleSet.from_toml(text.replace("9", "8"))
    assert a.version != b.version and len(a.version) == 12
    assert a.compile([]).rule_ids == ("early", "late")
