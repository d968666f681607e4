"""StreamProcessor without Kafka: validation, dead letters, fallback, labels, state."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from riskflow.batch import TxBatch
from riskflow.schema import validate_transaction
from riskflow.streams._batch import tx_batch
from riskflow.streams.processor import InRecord, StreamProcessor
from riskflow.streams.reference import CountingScorer

T0 = 1_767_268_800_000


def tx(i: int, **kw: object) -> dict:
    return {
        "schema_version": 1,
        "tx_id": f"t{i}",
        "event_time": T0 + i,
        "card_token": f"c{i % 3}",
        "merchant_id": f"m{i % 2}",
        "amount": 10.0 + i,
        **kw,
    }


def rec(i: int, value: bytes | None, topic: str = "tx", part: int = 0) -> InRecord:
    return InRecord(topic, part, i, T0, None, value)


def recs(values: list[bytes | None], start: int = 0, **kw: object) -> list[InRecord]:
    return [rec(start + i, v, **kw) for i, v in enumerate(values)]  # type: ignore[arg-type]


def test_one_decision_per_valid_record_and_dead_letters_for_the_rest() -> None:
    p = StreamProcessor(CountingScorer())
    bad = [
        b"{nope",
        orjson.dumps({**tx(90), "schema_version": 7}),
        orjson.dumps([1]),
        None,
        b"x" * 70_000,
        orjson.dumps({**tx(91), "card_token": "4111111111111111"}),
    ]
    values = [orjson.dumps(tx(i)) for i in range(5)] + bad
    out = p.process_transactions(recs(values))
    assert [d["tx_id"] for d in out.decisions] == [f"t{i}" for i in range(5)]
    assert len(out.dead_letters) == len(bad)
    body = orjson.loads(out.dead_letters[0][1])
    assert body["source"] == {"topic": "tx", "partition": 0, "offset": 5, "timestamp_ms": T0}
    assert base64.b64decode(body["original_b64"]) == b"{nope"
    assert orjson.loads(out.dead_letters[1][1])["error"]["field"] == "schema_version"
    assert all(b"4111111111111111" not in v for _, v in out.dead_letters)
    assert p.positions == {"tx/0": len(values)}
    d = out.decisions[0]
    assert d["source"] == {"partition": 0, "offset": 0} and d["event_time"] == T0
    assert d["source_ts_ms"] == T0  # the input record's timestamp: watch's latency
    assert d["decision"] in ("approve", "review", "decline") and d["fallback"] is False


def test_redelivered_records_are_skipped_not_decided_twice() -> None:
    p = StreamProcessor(CountingScorer())
    values = [orjson.dumps(tx(i)) for i in range(4)]
    p.process_transactions(recs(values))
    again = p.process_transactions(recs(values[2:], start=2) + recs([orjson.dumps(tx(4))], start=4))
    assert [d["tx_id"] for d in again.decisions] == ["t4"]
    assert again.skipped == 2


@pytest.mark.parametrize("fallback", ["approve", "decline"])
def test_scoring_failure_emits_flagged_fallback_for_every_transaction(fallback: str) -> None:
    p = StreamProcessor(CountingScorer(fail_on="t1"), fallback_decision=fallback)
    out = p.process_transactions(recs([orjson.dumps(tx(i)) for i in range(3)]))
    assert out.fallback == 3
    assert [d["decision"] for d in out.decisions] == [fallback] * 3
    assert all(d["fallback"] and d["score"] is None for d in out.decisions)
    assert all(d["source_ts_ms"] == T0 for d in out.decisions)
    orjson.dumps(out.decisions)  # JSON-ready


def test_bad_fallback_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="fallback_decision"):
        StreamProcessor(CountingScorer(), fallback_decision="maybe")


def test_labels_join_their_transaction_and_reach_the_features() -> None:
    p = StreamProcessor(CountingScorer())
    p.process_transactions(recs([orjson.dumps(tx(0)), orjson.dumps(tx(3))]))  # both card c0
    lab = {"tx_id": "t0", "label": 1, "label_time": T0 + 5}
    unknown = {"tx_id": "nope", "label": 1, "label_time": T0 + 5}
    out = p.process_labels(recs([orjson.dumps(lab), orjson.dumps(unknown), b"{"], topic="lab"))
    assert len(out.dead_letters) == 1
    assert p.labels_waiting == 1 and p.labels_unmatched == 0  # "nope" waits for its transaction
    d = p.process_transactions(recs([orjson.dumps(tx(6))], start=2)).decisions[0]
    frauds = {c["code"]: c["value"] for c in d["reasons"]}["card_frauds"]
    assert frauds == 1


def test_snapshot_restore_continues_identically() -> None:
    values = [orjson.dumps(tx(i)) for i in range(40)]
    label = orjson.dumps({"tx_id": "t3", "label": 1, "label_time": T0 + 4})
    straight = StreamProcessor(CountingScorer())
    straight.process_transactions(recs(values[:20]))
    straight.process_labels(recs([label], topic="lab"))
    blob = straight.snapshot()
    expected = straight.process_transactions(recs(values[20:], start=20)).decisions

    resumed = StreamProcessor(CountingScorer())
    resumed.restore(blob)
    assert resumed.positions == {"tx/0": 20, "lab/0": 1}
    got = resumed.process_transactions(recs(values[20:], start=20)).decisions
    assert [d["reasons"] for d in got] == [d["reasons"] for d in expected]
    assert [d["score"] for d in got] == [d["score"] for d in expected]


def test_label_keys_on_both_sides_of_2_63_stay_exact() -> None:
    p = StreamProcessor(CountingScorer())
    out = p.process_transactions(recs([orjson.dumps(tx(i)) for i in range(12)]))
    assert len(out.decisions) == 12
    labels = [
        orjson.dumps({"tx_id": f"t{i}", "label": 1, "label_time": T0 + 20}) for i in range(12)
    ]
    p.process_labels(recs(labels, topic="lab"))
    got = p._take_labels()
    assert got is not None
    cards = tx_batch([validate_transaction(tx(i)) for i in range(12)]).card
    assert (cards > 2**63).any() and (cards < 2**63).any()  # both sides, or the test is moot
    np.testing.assert_array_equal(got.card, cards)


def test_pending_labels_keep_exact_entity_keys_through_repeated_snapshots() -> None:
    p = StreamProcessor(CountingScorer())
    p.process_transactions(recs([orjson.dumps(tx(i)) for i in range(4)]))
    label = orjson.dumps({"tx_id": "t1", "label": 1, "label_time": T0 + 9})
    p.process_labels(recs([label], topic="lab"))
    want = p._take_labels()
    p.process_labels(recs([label], start=1, topic="lab"))  # the same label, pending again
    for _ in range(2):  # a restored state snapshotted again (uint64 keys must stay ints)
        q = StreamProcessor(CountingScorer())
        q.restore(p.snapshot())
        p = q
    got = p._take_labels()
    assert want is not None and got is not None
    for name, a, b in zip(want._fields, want, got, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype, name


def _frauds(out: object) -> list[float]:
    return [
        {c["code"]: c["value"] for c in d["reasons"]}["card_frauds"]
        for d in out.decisions  # type: ignore[attr-defined]
    ]


def _label_race(labels_first: StreamProcessor) -> tuple[list[float], list[float]]:
    """Card-fraud features after labels that reach a replica before their transactions.

    The uninterrupted run reads round A, then its labels, then round B. The
    replica gets the labels first: its labels partition is its own, round A
    lives on a partition another worker owns and is followed only once
    committed (or labels and transactions came in one fetch, labels handled
    first; or a gap replay read labels first).
    """
    round_a = [orjson.dumps(tx(i)) for i in range(6)]
    round_b = [orjson.dumps(tx(i)) for i in range(6, 12)]
    # Every label is due before round B (event times T0 + 6 ...), after round A.
    labels = [orjson.dumps({"tx_id": f"t{i}", "label": 1, "label_time": T0 + 5}) for i in (0, 1, 4)]
    straight = StreamProcessor(CountingScorer())
    straight.process_transactions(recs(round_a))
    straight.process_labels(recs(labels, topic="lab"))
    want = _frauds(straight.process_transactions(recs(round_b, start=6)))
    assert want == [1.0, 2.0, 0.0, 1.0, 2.0, 0.0]  # cards c0, c1, c2: the test is not moot

    p = labels_first
    p.process_labels(recs(labels, topic="lab"))
    assert p.labels_waiting == 3
    p.process_transactions(recs(round_a, topic="tx", part=1), emit=False)  # followed, no output
    assert p.labels_waiting == 0 and p.labels_unmatched == 0
    return want, _frauds(p.process_transactions(recs(round_b, start=6)))


def test_labels_before_their_transaction_wait_and_join_as_in_an_uninterrupted_run() -> None:
    want, got = _label_race(StreamProcessor(CountingScorer()))
    assert got == want


def test_labels_do_not_take_effect_in_the_batch_that_brings_their_transaction() -> None:
    p = StreamProcessor(CountingScorer())
    # Due at once (label time before the transaction): still not the batch's own rows.
    early = orjson.dumps({"tx_id": "t0", "label": 1, "label_time": T0 - 100})
    p.process_labels(recs([early], topic="lab"))
    out = p.process_transactions(recs([orjson.dumps(tx(i)) for i in (0, 3)]))
    assert _frauds(out) == [0.0, 0.0]
    assert _frauds(p.process_transactions(recs([orjson.dumps(tx(6))], start=2))) == [1.0]


def test_waiting_labels_survive_snapshot_and_restore() -> None:
    """kill -9 after the labels were consumed (and their offsets committed) loses nothing."""
    p = StreamProcessor(CountingScorer())
    labels = [orjson.dumps({"tx_id": f"t{i}", "label": 1, "label_time": T0 + 5}) for i in (0, 1, 4)]
    p.process_labels(recs(labels, topic="lab"))
    blob = p.snapshot()
    resumed = StreamProcessor(CountingScorer())
    resumed.restore(blob)
    assert resumed.positions == {"lab/0": 3} and resumed.labels_waiting == 3
    # The restored processor already holds the labels; reading them again
    # (positions say they are in the state) must not double them.
    assert resumed.process_labels(recs(labels, topic="lab")).skipped == 3
    want, got = _label_race(StreamProcessor(CountingScorer()))
    fresh = StreamProcessor(CountingScorer())
    fresh.restore(blob)
    fresh.process_transactions(recs([orjson.dumps(tx(i)) for i in range(6)], part=1), emit=False)
    round_b = [orjson.dumps(tx(i)) for i in range(6, 12)]
    assert _frauds(fresh.process_transactions(recs(round_b, start=6))) == want


def test_waiting_labels_are_bounded_oldest_dropped_and_counted() -> None:
    p = StreamProcessor(CountingScorer(), waiting_labels=2)
    labels = [orjson.dumps({"tx_id": f"t{i}", "label": 1, "label_time": T0 + 50}) for i in range(3)]
    p.process_labels(recs(labels, topic="lab"))
    assert (p.labels_waiting, p.labels_unmatched) == (2, 1)
    p.process_transactions(recs([orjson.dumps(tx(i)) for i in range(3)]))
    got = p._take_labels()
    assert got is not None and got.tx_id.tolist() == ["t1", "t2"]  # t0's label was dropped


def test_version_2_snapshots_still_load() -> None:
    p = StreamProcessor(CountingScorer())
    p.process_transactions(recs([orjson.dumps(tx(i)) for i in range(3)]))
    blob = p.snapshot()
    size = int.from_bytes(blob[:8], "little")
    head = orjson.loads(blob[8 : 8 + size])
    assert head["version"] == 3
    del head["waiting"]
    old = orjson.dumps({**head, "version": 2})
    q = StreamProcessor(CountingScorer())
    q.restore(len(old).to_bytes(8, "little") + old + blob[8 + size :])
    assert q.positions == p.positions and q.labels_waiting == 0


def test_snapshot_of_another_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="delete the state directory"):
        StreamProcessor(CountingScorer()).restore(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")


def test_gaps_and_unknown_partitions() -> None:
    p = StreamProcessor(CountingScorer())
    p.positions = {"tx/0": 10, "tx/1": 5}
    first = {("tx", 0): 10, ("tx", 1): 8, ("tx", 2): 3}
    assert p.unknown(first) == [("tx", 2)]
    assert p.gaps(first, {("tx", 2): 0}) == {("tx", 1): (5, 8), ("tx", 2): (0, 3)}
    assert p.is_new(rec(10, b"")) and not p.is_new(rec(9, b""))


def test_fast_batch_matches_txbatch_from_records() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(200):
        r = tx(
            i,
            customer_id=None if i % 4 == 0 else f"cu{i % 9}",
            device_id=f"d{i % 5}" if i % 3 else None,
            ip=f"10.0.0.{i % 7}",
            mcc=None if i % 5 == 0 else int(rng.integers(0, 9999)),
            channel=[None, "pos", "ecom", "ATM"][i % 4],
            entry_mode=[None, "chip", "cnp"][i % 3],
            country="de" if i % 2 else None,
            currency="EUR",
            card_bin="412345" if i % 2 else None,
        )
        if i % 6 == 0:
            r.update(lat=48.1, lon=11.5)
        rows.append(validate_transaction(r))
    fast, slow = tx_batch(rows), TxBatch.from_records(rows)
    for name, a, b in zip(TxBatch._fields, fast, slow, strict=True):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


class _Recording(CountingScorer):
    """CountingScorer keeping every batch it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[TxBatch] = []

    def score_batch(self, tx: TxBatch, labels: object = None) -> object:  # type: ignore[override]
        self.seen.append(tx)
        return super().score_batch(tx, labels)  # type: ignore[arg-type]


def _edge(i: int) -> dict:
    return tx(
        i,
        customer_id="ü-cüstomer" if i % 2 else None,
        device_id=f"d{i % 4}",
        ip="fe80::1" if i % 3 else "10.1.2.3",
        mcc=[0, 9999, None][i % 3],
        amount=[0, 1e9, 12, 0.1][i % 4],
        channel=["pos", "ecom", None, "p2p"][i % 4],
        entry_mode=["token", None, "manual"][i % 3],
        currency=["eur", "USD", None][i % 3],
        country=["de", None, "FR"][i % 3],
        lat=[-90, 90.0, None][i % 3],
        lon=[-180, 180.0, None][i % 3],
        card_bin=["123456", "12345678", None][i % 3],
    )


def test_batch_path_and_per_record_path_give_identical_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same decisions, dead letters (error, bytes, offset), positions and batch arrays."""
    import riskflow.streams.processor as proc_mod

    valid = [orjson.dumps(tx(i)) for i in range(40)]
    edge = [orjson.dumps(_edge(i)) for i in range(40, 80)]
    extra = [orjson.dumps({**tx(i), "note": "x"}) for i in range(80, 100)]
    mixed = [orjson.dumps(_edge(i)) for i in range(100, 110)] + [
        b"{nope",
        None,
        orjson.dumps({**tx(111), "amount": -1}),
        orjson.dumps({**tx(112), "tx_id": ""}),
        orjson.dumps({**tx(113), "event_time": "2026-01-01T00:00:00Z"}),  # valid, not canonical
        orjson.dumps({**tx(114), "card_token": "4111111111111111"}),
        orjson.dumps({**tx(115), "lat": 1.0}),
        orjson.dumps({**tx(116), "mcc": "5411"}),  # valid, normalised to an int
        orjson.dumps({**tx(117), "channel": "ECOM", "currency": ""}),
        b"x" * 70_000,
    ]
    batches = [valid, edge, extra, mixed]

    def run(fast: bool) -> tuple[StreamProcessor, _Recording, list, int]:
        scorer = _Recording()
        p = StreamProcessor(scorer)
        took_fast = 0
        real = proc_mod.fast_tx_batch

        def counted(values: list) -> TxBatch | None:
            nonlocal took_fast
            got = real(values) if fast else None
            took_fast += got is not None
            return got

        monkeypatch.setattr(proc_mod, "fast_tx_batch", counted)
        outs, start = [], 0
        for values in batches:
            out = p.process_transactions(recs(values, start=start))
            # Everything but the measured stage timings.
            decisions = [{k: v for k, v in d.items() if k != "timings_ms"} for d in out.decisions]
            outs.append((decisions, out.dead_letters, out.skipped))
            start += len(values)
        return p, scorer, outs, took_fast

    p_fast, s_fast, out_fast, took = run(fast=True)
    p_slow, s_slow, out_slow, took_slow = run(fast=False)
    assert took == 3 and took_slow == 0  # all but the mixed batch took the batch path
    assert out_fast == out_slow
    assert [len(d) for d, _, _ in out_fast] == [40, 40, 20, 13]
    assert len(out_fast[3][1]) == 7  # the mixed batch's dead letters
    assert p_fast.positions == p_slow.positions == {"tx/0": sum(map(len, batches))}
    for a, b in zip(s_fast.seen, s_slow.seen, strict=True):
        for name, x, y in zip(TxBatch._fields, a, b, strict=True):
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_decision_records_are_to_records_plus_the_source_byte_for_byte() -> None:
    from riskflow.pipeline import DecisionBatch
    from riskflow.streams.processor import decision_records

    n = 6
    reasons = [[], [{"feature": "f", "contribution": 0.5, "value": 1.0}], [], [], [], []]
    batch = DecisionBatch(
        tx_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        score=np.array([0.1, 0.95, np.nan, np.inf, 0.0, 1 / 3]),
        decision=np.array([0, 2, 1, 1, 0, 0], dtype=np.int8),
        reasons=reasons,
        model_version="m",
        policy_version="p",
        timings_ms={"features": 1.234567, "model": 2.0},
        rules_version="r7",
    )
    kept = [InRecord("tx", i % 2, 100 + i, None if i == 3 else T0 + i, None, b"") for i in range(n)]
    ts = np.arange(T0, T0 + n, dtype=np.int64)
    # The per-record construction this replaced.
    want = batch.to_records()
    for d, r, t in zip(want, kept, ts.tolist(), strict=True):
        d["event_time"] = t
        d["source"] = {"partition": r.partition, "offset": r.offset}
        d["source_ts_ms"] = r.timestamp_ms
        if d["score"] is not None and not np.isfinite(d["score"]):
            d["score"] = None
    got = decision_records(batch, kept, ts)
    assert list(map(orjson.dumps, got)) == list(map(orjson.dumps, want))
    assert [d["score"] for d in got][2:4] == [None, None]
