"""The fused evaluator (one kernel pass per batch) against the numpy reference, fuzzed.

Random rule sets over every field, feature, operator, function and list, on
batches with missing values and NaN features, with list entries missing,
expired or absent for a kind: hits, decisions and reason codes must be equal.
"""

from __future__ import annotations

import random

import numba
import numpy as np
from rules_testkit import FEATURES, batch

from riskflow.policies.rules import (
    BY_ALLOW,
    BY_DENY,
    BY_MODEL,
    BatchView,
    ListEntry,
    ListStore,
    RuleHits,
    RuleSet,
    RulesView,
    _kernels,
)
from riskflow.policies.rules.ruleset import ACTION_CODES

INDEX = {n: i for i, n in enumerate(FEATURES)}
_NUMS = [*FEATURES, "amount", "mcc", "lat", "lon", "score", "event_time"]
_CONSTS = ["0", "1", "2", "5", "0.5", "0.25", "100", "2000", "1767268830000", "3.75"]


def _num(r: random.Random, depth: int) -> str:
    if depth <= 0 or r.random() < 0.4:
        return r.choice(_NUMS) if r.random() < 0.75 else r.choice(_CONSTS)
    k = r.randrange(6)
    if k == 0:
        return f"-{_num(r, depth - 1)}"
    if k == 1:
        return f"abs({_num(r, depth - 1)})"
    if k == 2:
        return f"{r.choice(['min', 'max'])}({_num(r, depth - 1)}, {_num(r, depth - 1)})"
    return f"({_num(r, depth - 1)} {r.choice('+-*/')} {_num(r, depth - 1)})"


def _atom(r: random.Random, depth: int) -> str:
    k = r.randrange(14)
    cmp = r.choice(["==", "!=", "<", "<=", ">", ">="])
    if k <= 3:
        return f"{_num(r, depth)} {cmp} {_num(r, depth)}"
    if k == 4:
        field, vals = r.choice(
            [("channel", ["ecom", "pos", "atm"]), ("entry_mode", ["chip", "cnp"])]
        )
        return f'{field} {r.choice(["==", "!="])} "{r.choice(vals)}"'
    if k == 5:
        return f'"{r.choice(["ecom", "pos"])}" == channel'
    if k == 6:
        field, vals = r.choice([("card_token", ["c1", "c3", ""]), ("country", ["DE", "ng", "FR"]),
                                ("device_id", ["d1", "d2", ""]), ("ip", ["10.0.0.3"])])  # fmt: skip
        return f'{field} {r.choice(["==", "!="])} "{r.choice(vals)}"'
    if k == 7:
        neg = r.choice(["in", "not in"])
        opts = r.sample(["DE", "NG", "FR", "RU", "US"], r.randint(1, 3))
        return f"country {neg} [{', '.join(repr(o) for o in opts)}]"
    if k == 8:  # small sets (== chain) and large ones (binary search)
        opts = r.sample([5411, 7995, 5967, 4829, 1, 2, 3, 4, 5, 6, 7, 8], r.randint(1, 12))
        return f"{r.choice(['mcc', 'hour', 'card_count_10m'])} {r.choice(['in', 'not in'])} {opts}"
    if k == 9:
        field = r.choice(["card_token", "device_id", "ip", "country", "merchant_id", "customer_id"])
        return f"{field} {r.choice(['in', 'not in'])} {r.choice(['watch', 'deny', 'allow', 'vip'])}"
    if k == 10:
        return (
            f"is_missing({r.choice(['device_id', 'channel', 'card_amount_sum_24h', 'mcc', 'lat'])})"
        )
    if k == 11:
        return r.choice(["true", "false", "1 > 0", "2 < 1"])
    if k == 12 and depth > 0:
        return f"({_cond(r, depth - 1)}) {r.choice(['==', '!='])} ({_cond(r, depth - 1)})"
    return f"not ({_cond(r, depth - 1)})" if depth > 0 else "amount > 50"


def _cond(r: random.Random, depth: int) -> str:
    if depth <= 0 or r.random() < 0.35:
        return _atom(r, depth)
    return f"({_cond(r, depth - 1)}) {r.choice(['and', 'or'])} ({_cond(r, depth - 1)})"


def _ruleset(r: random.Random, n: int) -> RuleSet:
    rules = []
    for j in range(n):
        rules.append(
            {
                "id": f"r{j}",
                "when": _cond(r, 3),
                "action": r.choice(["decline", "review", "approve", "tag"]),
                "priority": r.randint(1, 9),
                "mode": r.choice(["active", "active", "shadow"]),
                "reason": f"rule {j}",
            }
        )
    return RuleSet.from_dict({"rule": rules, "lists": ["vip"]}, version=f"fuzz{n}")


def _store(r: random.Random, ts0: int) -> ListStore:
    store = ListStore()
    pool = [("card", "c{}", 8), ("device", "d{}", 7), ("ip", "10.0.0.{}", 10),
            ("country", ["DE", "NG", "FR", "RU"], 4), ("merchant", "m{}", 4)]  # fmt: skip
    for _ in range(r.randint(0, 14)):
        kind, fmt, hi = r.choice(pool)
        value = fmt[r.randrange(hi)] if isinstance(fmt, list) else fmt.format(r.randrange(hi))
        expires = r.choice([None, None, ts0 + r.randrange(0, 200_000)])  # some expire mid-batch
        store.put(ListEntry(r.choice(["allow", "deny", "watch", "vip"]), kind, value, expires))
    return store


def _naive_decide(hits: RuleHits, model: np.ndarray) -> tuple[list[int], list[int]]:
    """The documented order, row by row."""
    final, by = [], []
    allow, deny = hits.any_allow(), hits.any_deny()
    for i in range(len(model)):
        if allow[i]:
            final.append(0), by.append(BY_ALLOW)
            continue
        if deny[i]:
            final.append(2), by.append(BY_DENY)
            continue
        for j, rule in enumerate(hits.rules):
            if rule.mode == "active" and rule.action != "tag" and hits.hits[i, j]:
                final.append(ACTION_CODES[rule.action]), by.append(j)
                break
        else:
            final.append(int(model[i])), by.append(BY_MODEL)
    return final, by


def test_fused_program_equals_the_reference_on_random_rule_sets() -> None:
    r = random.Random(11)
    checked = hit_cells = 0
    for trial in range(60):
        tx, X, score = batch(n=r.choice([1, 7, 64, 300]), seed=trial)
        X[np.random.default_rng(trial).random(X.shape) < 0.15] = np.nan
        rs = _ruleset(r, r.randint(1, 40))
        compiled = rs.compile(FEATURES)
        assert compiled.program is not None
        store = _store(r, int(tx.ts[0]))
        view = BatchView(tx, X, INDEX, score, store.snapshot())
        fused, ref = compiled.hits(view), compiled.reference_hits(view)
        for j, rule in enumerate(compiled.rules):
            assert fused[:, j].tolist() == ref[:, j].tolist(), (trial, rule.when)
        checked += fused.size
        hit_cells += int(ref.sum())

        hits = RulesView(compiled, store.snapshot()).evaluate(tx, X, score, INDEX)
        for name, masks in (("allow", hits.allow), ("deny", hits.deny)):
            for kind, mask in masks.items():
                key = getattr(tx, kind if kind != "bin" else "bin")
                want = store.snapshot().member(name, kind, key, tx.ts)
                assert mask.tolist() == want.tolist(), (trial, name, kind)
        model = np.random.default_rng(trial).integers(0, 3, len(tx)).astype(np.int8)
        final, by = hits.decide(model)
        want_final, want_by = _naive_decide(hits, model)
        assert final.tolist() == want_final and by.tolist() == want_by, trial
        codes = hits.reason_codes(by)
        for i in range(len(tx)):
            want = [f"rule:{rule.id}" + (":shadow" if rule.mode == "shadow" else "")
                    for j, rule in enumerate(hits.rules) if hits.hits[i, j]]  # fmt: skip
            got = [c["code"] for c in codes.get(i, []) if c["code"].startswith("rule:")]
            assert got == want, (trial, i)
    # The fuzz exercised something: many cells, both outcomes.
    assert checked > 10_000 and 0.05 < hit_cells / checked < 0.95


def test_decide_only_restricts_the_deciding_rules() -> None:
    r = random.Random(5)
    tx, X, score = batch(n=120, seed=2)
    compiled = _ruleset(r, 25).compile(FEATURES)
    hits = RulesView(compiled).evaluate(tx, X, score, INDEX)
    model = np.zeros(len(tx), dtype=np.int8)
    for only in ([], [3], [0, 7, 11], list(range(25))):
        sub = RuleHits(
            hits.rules,
            np.where(np.isin(np.arange(25), only), hits.hits, False),
            hits.allow,
            hits.deny,
        )
        assert hits.decide(model, only=only)[0].tolist() == _naive_decide(sub, model)[0]


def test_the_fused_kernel_is_compiled() -> None:
    """The fast path must not silently fall back to Python (unless JIT is off on purpose)."""
    if numba.config.DISABLE_JIT:
        return
    assert isinstance(_kernels._run_program, numba.core.registry.CPUDispatcher)
    tx, X, score = batch(n=16)
    compiled = RuleSet.from_toml('[[rule]]\nid = "a"\nwhen = "amount > 1"\naction = "tag"').compile(
        FEATURES
    )
    compiled.hits(BatchView(tx, X, INDEX, score))
    assert _kernels._run_program.signatures  # it ran compiled


def test_a_float32_score_is_compared_in_float64() -> None:
    """A model returning float32 gets the same hits as float64 (numpy would compare in float32)."""
    tx, X, _ = batch(n=3)
    score32 = np.array([0.7, 0.8, 0.1], dtype=np.float32)  # float32(0.7) < 0.7 in float64
    assert (score32 >= 0.7).tolist() == [True, True, False]  # what numpy alone would say
    rs = RuleSet.from_toml('[[rule]]\nid = "s"\nwhen = "score >= 0.7"\naction = "review"')
    compiled = rs.compile(FEATURES)
    hits = RulesView(compiled).evaluate(tx, X, score32, INDEX)
    assert hits.hits[:, 0].tolist() == [False, True, False]
    view = BatchView(tx, X, INDEX, score32.astype(np.float64))
    assert compiled.reference_hits(view)[:, 0].tolist() == [False, True, False]
