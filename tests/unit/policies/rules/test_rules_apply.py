"""The decision order, shadow rules, reason codes, and the pipeline's rules stage."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rules_testkit import FEATURES, batch

from riskflow.batch import TxBatch
from riskflow.pipeline import ScoringPipeline
from riskflow.policies.rules import (
    BY_ALLOW,
    BY_DENY,
    BY_MODEL,
    ListEntry,
    ListStore,
    LiveRules,
    RuleSet,
    RulesView,
)
from riskflow.policies.rules.codec import encode_list_put, encode_ruleset

INDEX = {n: i for i, n in enumerate(FEATURES)}


def _rs(*rules: tuple[str, str, str, int, str], version: str = "t1") -> RuleSet:
    body = [f'version = "{version}"']
    for rid, when, action, prio, mode in rules:
        body.append(
            f'[[rule]]\nid = "{rid}"\nwhen = \'{when}\'\naction = "{action}"\n'
            f'priority = {prio}\nmode = "{mode}"\nreason = "why {rid}"'
        )
    return RuleSet.from_toml("\n".join(body))


def _view(rs: RuleSet, store: ListStore | None = None) -> RulesView:
    store = store or ListStore()
    return RulesView(rs.compile(FEATURES), store.snapshot(), store.version)


def test_order_allow_then_deny_then_rules_by_priority_then_model() -> None:
    tx, X, score = batch(n=40)
    store = ListStore()
    store.put(ListEntry("allow", "card", "c1"))
    store.put(ListEntry("deny", "card", "c1"))  # allow wins over deny
    store.put(ListEntry("deny", "merchant", "m2"))
    rs = _rs(
        ("everything_review", "amount >= 0", "review", 50, "active"),
        ("big_approve", "amount > 100", "approve", 20, "active"),
        ("tag_all", "amount >= 0", "tag", 1, "active"),
    )
    hits = _view(rs, store).evaluate(tx, X, score, INDEX)
    model = np.full(len(tx), 2, np.int8)
    final, by = hits.decide(model)
    card1 = np.array([t == "t" + str(i) and i % 7 == 1 for i, t in enumerate(tx.tx_id)])
    m2 = np.array([i % 3 == 2 for i in range(len(tx))])
    big = tx.amount > 100
    for i in range(len(tx)):
        if card1[i]:
            assert (final[i], by[i]) == (0, BY_ALLOW)
        elif m2[i]:
            assert (final[i], by[i]) == (2, BY_DENY)
        elif big[i]:
            assert (final[i], rs.compile(FEATURES).rules[by[i]].id) == (0, "big_approve")
        else:
            assert (final[i], rs.compile(FEATURES).rules[by[i]].id) == (1, "everything_review")
    codes = hits.reason_codes(by)
    assert all(
        any(c["code"] == "rule:tag_all" and not c["decided"] for c in codes[i])
        for i in range(len(tx))
    )
    i = int(np.flatnonzero(m2 & ~card1)[0])
    assert [c["code"] for c in codes[i] if c["code"].startswith("list")] == ["list:deny:merchant"]


def test_rules_that_do_not_hit_leave_the_model_decision() -> None:
    tx, X, score = batch()
    hits = _view(_rs(("never", "amount < 0", "decline", 1, "active"))).evaluate(tx, X, score, INDEX)
    model = np.arange(len(tx), dtype=np.int8) % 3
    final, by = hits.decide(model)
    assert final.tolist() == model.tolist() and set(by.tolist()) == {BY_MODEL}


def test_shadow_rules_never_change_a_decision() -> None:
    """Random rule sets: the same rules in shadow mode give exactly the model's decisions,
    and adding shadow rules to an active set changes nothing."""
    rng = random.Random(3)
    conds = ['amount > 100', 'channel == "ecom"', "card_count_10m >= 5", "score > 0.5",
             'country in ["NG"]', "hour < 6", "is_missing(device_id)"]  # fmt: skip
    tx, X, score = batch(n=200, seed=5)
    model = np.random.default_rng(1).integers(0, 3, len(tx)).astype(np.int8)
    for trial in range(25):
        rules = [
            (f"r{j}", " and ".join(rng.sample(conds, rng.randint(1, 2))),
             rng.choice(["decline", "review", "approve", "tag"]), rng.randint(1, 9), "shadow")
            for j in range(rng.randint(1, 8))
        ]  # fmt: skip
        shadow = _view(_rs(*rules)).evaluate(tx, X, score, INDEX)
        final, _ = shadow.decide(model)
        assert final.tolist() == model.tolist(), trial
        assert shadow.hits.any()  # the shadow rules did hit something
        active = [(f"a{j}", c, a, p, "active") for j, (_, c, a, p, _) in enumerate(rules[:3])]
        alone = _view(_rs(*active)).evaluate(tx, X, score, INDEX).decide(model)[0]
        mixed = _view(_rs(*active, *rules)).evaluate(tx, X, score, INDEX).decide(model)[0]
        assert mixed.tolist() == alone.tolist(), trial


def test_list_entries_expire_by_event_time() -> None:
    tx, X, score = batch(n=20)
    store = ListStore()
    cut = int(tx.ts[10])
    store.put(ListEntry("deny", "ip", "10.0.0.1", expires_at=cut))
    hits = _view(_rs(), store).evaluate(tx, X, score, INDEX)
    on = [i for i in range(20) if i % 9 == 1]
    assert np.flatnonzero(hits.any_deny()).tolist() == [i for i in on if tx.ts[i] < cut]


class _Engine:
    feature_names = FEATURES

    def __init__(self, X: np.ndarray) -> None:
        self.X, self.at = X, 0

    def process(self, tx: TxBatch, labels: object = None) -> np.ndarray:
        out = self.X[self.at : self.at + len(tx)]
        self.at += len(tx)
        return out


class _Model:
    version = "m1"

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), 0.01)

    def reason_codes(self, X: np.ndarray, rows: object, k: int = 3) -> list:
        return [[{"feature": "x", "description": "model"}] for _ in rows]  # type: ignore[attr-defined]


class _Policy:
    version = "p1"

    def decide(self, s: np.ndarray) -> np.ndarray:
        return (s > 0.5).astype(np.int8)


def test_pipeline_rule_hit_overrides_the_model_and_is_recorded() -> None:
    tx, X, _ = batch(n=30)
    rs = _rs(
        ("big", "amount > 300", "decline", 5, "active"),
        ("watch_big", "amount > 100", "review", 9, "shadow"),
    )
    pipe = ScoringPipeline(_Engine(X), _Model(), _Policy(), rules=LiveRules(FEATURES, rs))
    out = pipe.score_batch(tx)
    big, mid = tx.amount > 300, tx.amount > 100
    assert big.any() and (mid & ~big).any()
    assert out.decision.tolist() == np.where(big, 2, 0).tolist()
    assert out.model_decision.tolist() == [0] * 30
    recs = out.to_records()
    for i, r in enumerate(recs):
        codes = [c["code"] for c in r["reasons"]]
        assert ("rule:big" in codes) == big[i]
        assert ("rule:watch_big:shadow" in codes) == mid[i]
        assert r["rules_version"] == "t1+lists@0"
    assert "rules" in out.timings_ms


def test_pipeline_hot_update_applies_from_the_next_batch() -> None:
    tx, X, _ = batch(n=60)
    first, second = tx.take(slice(0, 30)), tx.take(slice(30, 60))
    live = LiveRules(FEATURES)
    pipe = ScoringPipeline(_Engine(X), _Model(), _Policy(), rules=live)
    a = pipe.score_batch(first)
    assert a.rules_version == "none+lists@0" and not a.decision.any()
    live.apply_update(
        *encode_ruleset(_rs(("all", "amount >= 0", "decline", 1, "active"), version="v2")), offset=4
    )
    live.apply_update(*encode_list_put(ListEntry("allow", "card", "c3")), offset=5)
    b = pipe.score_batch(second)
    assert b.rules_version == "v2+lists@5"
    card3 = np.array([int(t[1:]) % 7 == 3 for t in second.tx_id])
    assert b.decision.tolist() == np.where(card3, 0, 2).tolist()


def test_an_invalid_ruleset_update_keeps_the_old_one() -> None:
    live = LiveRules(FEATURES, _rs(("r", "amount > 1", "review", 1, "active"), version="good"))
    bad = RuleSet.from_toml(
        'version = "bad"\n[[rule]]\nid = "x"\nwhen = "amont > 1"\naction = "review"'
    )
    with pytest.raises(Exception, match="did you mean 'amount'"):
        live.apply_update(*encode_ruleset(bad))
    assert live.current().ruleset.version == "good"
