"""Records of the compacted rules topic: one key per rule set and per list entry.

Compaction keeps the latest value of each key, so reading the topic from its
beginning always rebuilds the current rules and lists:

* key ``ruleset`` -> the whole rule set (JSON); a tombstone clears the rules;
* key ``["list", <list>, <kind>, <value>]`` (JSON) -> the entry; a tombstone
  removes it.

>>> from riskflow.policies.rules.lists import ListEntry
>>> k, v = encode_list_put(ListEntry("deny", "ip", "10.0.0.1"))
>>> decode(k, v).entry.value, decode(k, None).kind
('10.0.0.1', 'list_remove')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from riskflow.policies.rules.exceptions import RuleError
from riskflow.policies.rules.lists import ListEntry, normalise_value
from riskflow.policies.rules.ruleset import RuleSet

__all__ = [
    "RULESET_KEY",
    "Update",
    "encode_ruleset",
    "encode_ruleset_clear",
    "encode_list_put",
    "encode_list_remove",
    "decode",
]

RULESET_KEY = b"ruleset"
#: A rule set record larger than this is refused (the broker default max is 1 MiB).
MAX_RECORD_BYTES = 900_000


@dataclass(frozen=True)
class Update:
    """One decoded record: ``kind`` is ruleset, ruleset_clear, list_put or list_remove."""

    kind: str
    ruleset: RuleSet | None = None
    entry: ListEntry | None = None
    ident: tuple[str, str, str] | None = None


def encode_ruleset(ruleset: RuleSet, **meta: Any) -> tuple[bytes, bytes]:
    """``(key, value)`` publishing ``ruleset``; ``meta`` (who, when) travels along."""
    value = orjson.dumps({"ruleset": ruleset.to_dict(), **meta})
    if len(value) > MAX_RECORD_BYTES:
        raise RuleError(
            f"The rule set encodes to {len(value)} bytes, more than {MAX_RECORD_BYTES}; "
            "split it or shorten reasons."
        )
    return RULESET_KEY, value


def encode_ruleset_clear() -> tuple[bytes, None]:
    """``(key, tombstone)`` removing every rule."""
    return RULESET_KEY, None


def _list_key(name: str, kind: str, value: str) -> bytes:
    return orjson.dumps(["list", name, kind, value])


def encode_list_put(entry: ListEntry) -> tuple[bytes, bytes]:
    """``(key, value)`` adding or replacing ``entry``."""
    return _list_key(*entry.ident), orjson.dumps(entry.to_dict())


def encode_list_remove(name: str, kind: str, value: str) -> tuple[bytes, None]:
    """``(key, tombstone)`` removing an entry."""
    return _list_key(name, kind, normalise_value(kind, value)), None


def decode(key: bytes | None, value: bytes | None) -> Update:
    """Decode one rules-topic record.

    Raises
    ------
    RuleError
        An unknown key or a malformed value (the worker logs and skips it).
    """
    if key == RULESET_KEY:
        if value is None:
            return Update("ruleset_clear")
        try:
            doc = orjson.loads(value)
            body = doc["ruleset"]
            return Update("ruleset", ruleset=RuleSet.from_dict(body, version=body.get("version")))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise RuleError(f"Malformed rule set record: {type(exc).__name__}: {exc}.") from exc
    try:
        parts = orjson.loads(key) if key else None
    except orjson.JSONDecodeError:
        parts = None
    if not (isinstance(parts, list) and len(parts) == 4 and parts[0] == "list"):
        shown = (key or b"")[:60]
        raise RuleError(f"Unknown rules-topic key {shown!r}; expected 'ruleset' or a list key.")
    _, name, kind, val = parts
    if value is None:
        return Update("list_remove", ident=(str(name), str(kind), str(val)))
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RuleError(f"Malformed list entry record: {exc}.") from exc
    if not isinstance(doc, dict):
        raise RuleError("Malformed list entry record: not a JSON object.")
    entry = ListEntry.from_dict(doc)
    return Update("list_put", entry=entry)
