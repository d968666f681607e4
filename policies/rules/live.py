"""The rules and lists a running worker decides with, updated from the rules topic.

:class:`LiveRules` holds the current rule set (compiled against the feature
catalogue) and list store. :meth:`LiveRules.apply_update` takes one record of
the compacted rules topic; :meth:`LiveRules.current` returns an immutable
:class:`~riskflow.policies.rules.apply.RulesView` that the pipeline reads once
per batch, so an update never splits a batch: it applies from the next batch,
whose first input offsets the worker logs.

>>> from riskflow.policies.rules.codec import encode_ruleset
>>> live = LiveRules(["card_count_10m"])
>>> rs = RuleSet.from_toml('version = "v1"\\n[[rule]]\\nid = "r"\\nwhen = "card_count_10m > 3"\\naction = "review"')
>>> live.apply_update(*encode_ruleset(rs), offset=7)
'v1+lists@0'
"""

from __future__ import annotations

from collections.abc import Sequence

from riskflow.policies.rules.apply import EMPTY_RULES, RulesView
from riskflow.policies.rules.codec import decode
from riskflow.policies.rules.lists import ListStore
from riskflow.policies.rules.ruleset import CompiledRuleSet, RuleSet

__all__ = ["LiveRules"]


class LiveRules:
    """Current rules + lists, hot-updated.

    Parameters
    ----------
    feature_names
        The feature catalogue's names, in feature-matrix column order.
    ruleset
        Initial rule set (e.g. from ``rules.path``), replaced by the topic's.
    lists
        Initial list store.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        ruleset: RuleSet | None = None,
        lists: ListStore | None = None,
    ) -> None:
        self.feature_names = list(feature_names)
        self.feature_index = {n: i for i, n in enumerate(self.feature_names)}
        self.lists = lists if lists is not None else ListStore()
        self.ruleset: RuleSet | None = None
        self._compiled: CompiledRuleSet = EMPTY_RULES
        self._view: RulesView | None = None
        if ruleset is not None:
            self.set_ruleset(ruleset)

    def set_ruleset(self, ruleset: RuleSet | None) -> None:
        """Compile and install ``ruleset`` (None clears); the old one stays if it fails."""
        compiled = ruleset.compile(self.feature_names) if ruleset is not None else EMPTY_RULES
        self.ruleset, self._compiled, self._view = ruleset, compiled, None

    def apply_update(
        self, key: bytes | None, value: bytes | None, offset: int | None = None
    ) -> str:
        """Apply one rules-topic record; return the version now in force.

        ``offset`` (the record's topic offset) becomes the list version, so
        every worker reading the topic reports the same version.
        """
        upd = decode(key, value)
        if upd.kind == "ruleset":
            self.set_ruleset(upd.ruleset)
        elif upd.kind == "ruleset_clear":
            self.set_ruleset(None)
        elif upd.kind == "list_put":
            assert upd.entry is not None
            self.lists.put(upd.entry)
            if offset is not None:
                self.lists.version = offset
        else:
            assert upd.ident is not None
            self.lists.remove(*upd.ident)
            if offset is not None:
                self.lists.version = offset
        self._view = None
        return self.current().version

    def current(self) -> RulesView:
        """The view batches are decided with (rebuilt only after a change)."""
        if self._view is None:
            self._view = RulesView(self._compiled, self.lists.snapshot(), self.lists.version)
        return self._view
