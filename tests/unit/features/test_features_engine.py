"""FeatureEngine: batch-split and snapshot invariance, reference agreement, no leakage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from riskflow.batch import LabelBatch, TxBatch
from riskflow.config import FeatureConfig
from riskflow.features import FeatureEngine, SnapshotError, catalogue
from riskflow.features._bench import SUBSET, _synthetic_labels, pandas_subset, synthetic_stream

sys.path.insert(0, str(Path(__file__).parent))
from features_naive import naive  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = synthetic_stream(3000, seed=3)
    lb = _synthetic_labels(tx, 3)
    tx_ts = tx.set_index("tx_id")["event_time"].loc[lb["tx_id"]].to_numpy()
    lb["label_time"] = tx_ts + (lb["label_time"].to_numpy() - tx_ts) // 8  # inside the stream
    lb = lb.copy()
    lb.loc[lb.index[::2], "label"] = 1
    return tx, lb


def _one_shot(tx_df, lb_df, config=None):
    eng = FeatureEngine(config)
    return eng.process(TxBatch.from_frame(tx_df), LabelBatch.join(lb_df, tx_df)), eng


def _same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))  # bitwise, NaN included


def test_catalogue_is_big_documented_and_unique() -> None:
    specs = catalogue()
    assert len(specs) >= 200
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        assert s.description and (s.description[0].isupper() or s.description[0].isdigit())
        assert s.kind in ("numeric", "categorical")
    entities = {s.entity for s in specs}
    assert {
        "card",
        "customer",
        "merchant",
        "terminal",
        "device",
        "ip",
        "card_merchant",
        "card_device",
    } <= entities
    assert {"mcc", "channel", "entry_mode", "day_of_week"} <= {
        s.name for s in specs if s.kind == "categorical"
    }


def test_cli_lists_catalogue_as_json() -> None:
    from riskflow.cli import main

    res = CliRunner().invoke(main, ["features", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == [s.name for s in catalogue()]
    assert {"name", "entity", "window", "aggregation", "description"} <= set(rows[0])


def _tiny_tables(stream: Any) -> tuple[FeatureConfig, np.ndarray, TxBatch, LabelBatch]:
    """Tiny tables and a 2-day TTL (growth, logical eviction and rebuilds all happen):
    the config, the one-shot features, the transactions and their labels."""
    tx_df, lb_df = stream
    cfg = FeatureConfig(initial_capacity=16, entity_ttl_days=2.0)
    X_ref, _ = _one_shot(tx_df, lb_df, cfg)
    return cfg, X_ref, TxBatch.from_frame(tx_df), LabelBatch.join(lb_df, tx_df)


def _labels_known_by(
    labels: LabelBatch, chunk: TxBatch, cursor: int
) -> tuple[LabelBatch | None, int]:
    """Labels from ``cursor`` released by ``chunk``'s last time, and the next cursor."""
    end = int(np.searchsorted(labels.label_time, chunk.ts[-1], side="right"))
    lb = LabelBatch(*(a[cursor:end] for a in labels)) if end > cursor else None
    return lb, max(cursor, end)


def test_random_batches_and_snapshot_equal_one_shot(stream) -> None:
    cfg, X_ref, tx, labels = _tiny_tables(stream)
    rng = np.random.default_rng(0)
    eng = FeatureEngine(cfg)
    parts, start, cursor, k = [], 0, 0, 0
    while start < len(tx):
        size = int(rng.choice([1, 1, 2, 7, 50, 333]))
        chunk = tx.take(slice(start, start + size))
        lb, cursor = _labels_known_by(labels, chunk, cursor)
        parts.append(eng.process(chunk, lb))
        start += size
        k += 1
        if k % 40 == 0:  # checkpoint and continue from the restored copy
            blob = eng.snapshot({"offset": start})
            eng = FeatureEngine.restore(blob, cfg)
            assert eng.position == {"offset": start}
    _same(np.concatenate(parts), X_ref)


def test_every_selection_equals_the_full_sets_columns(stream) -> None:
    """A subset keeps only the state its features read; each feature alone, the
    bench's subset and random subsets must still equal the full set's columns."""
    tx_df, lb_df = stream
    X_full, full = _one_shot(tx_df, lb_df)
    tx, labels = TxBatch.from_frame(tx_df), LabelBatch.join(lb_df, tx_df)
    rng = np.random.default_rng(1)
    names = full.feature_names
    picks = [[f] for f in names] + [SUBSET]
    picks += [list(rng.choice(names, size=k, replace=False)) for k in (2, 5, 20, 60)]
    wrong = []
    for pick in picks:
        X = FeatureEngine(features=pick).process(tx, labels)
        cols = [names.index(f) for f in pick]
        if not np.array_equal(X.view(np.uint32), X_full[:, cols].view(np.uint32)):
            wrong.append(pick if len(pick) < 3 else f"{len(pick)} features")
    assert not wrong, f"selections differing from the full set: {wrong}"
    # A selection's snapshot restores into the same selection and continues exactly,
    # and is refused by another one.
    pick = picks[-1]
    half = len(tx) // 2
    eng = FeatureEngine(features=pick)
    first = eng.process(tx.take(slice(0, half)), labels)
    blob = eng.snapshot()
    rest = FeatureEngine.restore(blob, features=pick).process(tx.take(slice(half, len(tx))))
    _same(np.concatenate([first, rest]), X_full[:, [names.index(f) for f in pick]])
    with pytest.raises(SnapshotError):
        FeatureEngine.restore(blob, features=pick[:-1])


def test_growth_into_buffers_prepared_ahead_gives_the_same_features(stream) -> None:
    """A worker's thread makes a nearly full table's grown arrays ready; features do not change."""
    cfg, X_ref, tx, labels = _tiny_tables(stream)
    eng = FeatureEngine(cfg)
    parts, cursor, used, prepared = [], 0, 0, 0
    for start in range(0, len(tx), 25):
        chunk = tx.take(slice(start, start + 25))
        lb, cursor = _labels_known_by(labels, chunk, cursor)
        if eng.growth_due_soon():
            eng.prepare_growth()
            prepared += 1
            assert not eng.growth_due_soon()  # ready: not asked again
        spare = dict(eng.__dict__.get("_grow_spare", {}))
        parts.append(eng.process(chunk, lb))
        after = eng.__dict__.get("_grow_spare", {})
        used += sum(
            1
            for name, bufs in spare.items()
            if name not in after and getattr(eng, f"_{name}").keys is bufs[0]
        )
    _same(np.concatenate(parts), X_ref)
    assert prepared >= 2 and used >= 2  # prepared ahead, then grown into


def test_reserve_sizes_the_tables_once_and_changes_no_feature(stream) -> None:
    """Tables sized for the whole stream up front never grow, and features stay the same bits."""
    cfg, X_ref, tx, labels = _tiny_tables(stream)
    eng = FeatureEngine(cfg)
    eng.reserve(tx)
    sized = (eng._ent.keys, eng._pair.keys)
    assert sized[0].shape[0] > 16 and sized[1].shape[0] > 16
    parts, cursor = [], 0
    for start in range(0, len(tx), 500):
        chunk = tx.take(slice(start, start + 500))
        lb, cursor = _labels_known_by(labels, chunk, cursor)
        parts.append(eng.process(chunk, lb))
    _same(np.concatenate(parts), X_ref)
    assert eng._ent.keys is sized[0] and eng._pair.keys is sized[1], "a table grew"
    # At most 70 % full, and not oversized: the estimate is within ~1 %, plus 10 %.
    for table in (eng._ent, eng._pair):
        assert 0.7 * table.keys.shape[0] >= table.meta[0] > 0.15 * table.keys.shape[0]
    # Sizing mid-stream keeps every row; a later reserve never shrinks.
    eng2 = FeatureEngine(cfg)
    first = eng2.process(tx.take(slice(0, 1000)), labels)
    eng2.reserve(tx.take(slice(1000, len(tx))))
    eng2.reserve(tx.take(slice(0, 10)))
    _same(np.concatenate([first, eng2.process(tx.take(slice(1000, len(tx))))]), X_ref)


def test_process_into_a_reused_buffer(stream) -> None:
    """``out=``: the same features written into the caller's (dirty) buffer; a wrong one is refused."""
    cfg, X_ref, tx, labels = _tiny_tables(stream)
    eng = FeatureEngine(cfg)
    buf = np.full((1000, eng.n_features), 7.0, np.float32)
    parts, cursor = [], 0
    for start in range(0, len(tx), 1000):
        chunk = tx.take(slice(start, start + 1000))
        lb, cursor = _labels_known_by(labels, chunk, cursor)
        X = eng.process(chunk, lb, out=buf[: len(chunk)])
        assert X.base is buf or X is buf
        parts.append(X.copy())
    _same(np.concatenate(parts), X_ref)
    for bad in (np.zeros((5, eng.n_features)), np.zeros((4, eng.n_features), np.float32)):
        with pytest.raises(ValueError, match="out must be"):
            eng.process(tx.take(slice(0, 5)), out=bad)


def test_labels_all_at_once_equal_labels_as_they_come(stream) -> None:
    tx_df, lb_df = stream
    X_ref, _ = _one_shot(tx_df, lb_df)
    tx, labels = TxBatch.from_frame(tx_df), LabelBatch.join(lb_df, tx_df)
    eng = FeatureEngine()
    X = np.concatenate(
        [eng.process(tx.take(slice(0, 1000)), labels), eng.process(tx.take(slice(1000, None)))]
    )
    _same(X, X_ref)


def test_agrees_with_slow_reference(stream) -> None:
    tx_df, lb_df = stream
    tx_df = tx_df.iloc[:1500]
    lb_df = lb_df[lb_df["tx_id"].isin(tx_df["tx_id"])]
    X, eng = _one_shot(tx_df, lb_df)
    ref = naive(tx_df, lb_df)
    for name in ref.columns:
        got = X[:, eng.feature_names.index(name)].astype(np.float64)
        np.testing.assert_allclose(
            got, ref[name].to_numpy(float), rtol=2e-5, atol=1e-4, err_msg=name
        )
    assert np.nansum(ref["merchant_fraud_count_30d"]) > 0  # labels did reach features


def test_appending_later_transactions_changes_nothing_earlier(stream) -> None:
    tx_df, lb_df = stream
    X_all, _ = _one_shot(tx_df, lb_df)
    X_head, _ = _one_shot(tx_df.iloc[:1200], lb_df[lb_df["tx_id"].isin(tx_df["tx_id"].iloc[:1200])])
    _same(X_head, X_all[:1200])


def test_label_visible_only_from_its_label_time() -> None:
    t0 = 1_767_225_600_000
    df = pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(6)],
            "event_time": [t0 + i * 3_600_000 for i in range(6)],
            "card_token": ["c"] * 6,
            "merchant_id": ["m"] * 6,
            "amount": [10.0] * 6,
        }
    )
    lb = pd.DataFrame({"tx_id": ["t0"], "label": [1], "label_time": [t0 + 3 * 3_600_000]})
    eng = FeatureEngine()
    X = eng.process(TxBatch.from_frame(df), LabelBatch.join(lb, df))
    f = X[:, eng.feature_names.index("card_fraud_count_30d")]
    m = X[:, eng.feature_names.index("merchant_fraud_count_30d")]
    assert f[:3].tolist() == [0, 0, 0] and m[:3].tolist() == [0, 0, 0]
    assert f[3] == pytest.approx(1.0) and f[5] == pytest.approx(np.exp(-2 / (30 * 24)), rel=1e-6)
    # A label arriving after its label time applies before the next transaction.
    eng2 = FeatureEngine()
    eng2.process(TxBatch.from_frame(df.iloc[:4]))
    X2 = eng2.process(TxBatch.from_frame(df.iloc[4:]), LabelBatch.join(lb, df))
    # (applied at the stream clock t3, read at t4: one hour of decay)
    assert X2[0, eng.feature_names.index("card_fraud_count_30d")] == pytest.approx(
        np.exp(-1 / 720), rel=1e-6
    )


def test_missing_optional_fields_give_nan_not_errors() -> None:
    df = pd.DataFrame(
        {
            "tx_id": ["a", "b"],
            "event_time": [1_767_225_600_000] * 2,
            "card_token": ["c", "c"],
            "merchant_id": ["m", None],
            "amount": [1.0, 2.0],
        }
    )
    eng = FeatureEngine()
    X = eng.process(TxBatch.from_frame(df))
    names = eng.feature_names
    for n in (
        "device_count_1h",
        "ip_fraud_rate_30d",
        "card_geo_speed_kmh",
        "mcc",
        "channel",
        "card_ip_is_first",
        "customer_amount_mean_24h",
    ):
        assert np.isnan(X[:, names.index(n)]).all(), n
    assert np.isnan(X[1, names.index("merchant_count_1h")])
    assert X[:, names.index("missing_device")].tolist() == [1, 1]
    assert eng.process(TxBatch.from_frame(df.iloc[:0])).shape == (0, len(names))


def test_snapshot_later_serialises_the_state_as_captured(stream) -> None:
    tx, lb = stream
    head, tail = tx.iloc[:1500], tx.iloc[1500:]
    eng = FeatureEngine()
    eng.process(TxBatch.from_frame(head), LabelBatch.join(lb, tx))
    now = eng.snapshot({"at": 1500})
    later = eng.snapshot_later({"at": 1500})
    eng.process(TxBatch.from_frame(tail), None)  # the live state moves on meanwhile
    assert later() == now
    assert FeatureEngine.restore(later()).position == {"at": 1500}


def test_prepared_capture_buffers_are_the_ones_copied_into(stream) -> None:
    """A worker's thread allocates and touches the capture buffers ahead (prepare_capture);
    the capture then copies into those, and serialises the same state."""
    tx, lb = stream
    eng = FeatureEngine()
    eng.process(TxBatch.from_frame(tx.iloc[:1500]), LabelBatch.join(lb, tx))
    eng.prepare_capture()
    prepared = {k: id(v) for k, v in eng._spare.items()}
    assert prepared, "no buffers prepared"
    now = eng.snapshot({"at": 1500})
    later = eng.snapshot_later({"at": 1500})
    assert {k: id(v) for k, v in eng._spare.items()} == prepared
    assert later() == now


def test_old_or_corrupt_snapshot_is_refused() -> None:
    import io

    blob = FeatureEngine().snapshot()
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    header["layout_version"] = 0
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(SnapshotError, match="layout_version=0"):
        FeatureEngine.restore(buf.getvalue())
    with pytest.raises(SnapshotError, match="Not a feature-state snapshot"):
        FeatureEngine.restore(b"garbage")


def test_pandas_baseline_counts_are_exact_windows() -> None:
    df = synthetic_stream(400, seed=1)
    got = pandas_subset(df)
    t = df["event_time"].to_numpy()
    c = df["card_token"].to_numpy()
    want = [((c[:i] == c[i]) & (t[:i] > t[i] - 3_600_000)).sum() for i in range(len(df))]
    # Same-timestamp rows: pandas' closed="left" window excludes them, so do we.
    want = [
        ((c[:i] == c[i]) & (t[:i] > t[i] - 3_600_000) & (t[:i] < t[i])).sum()
        for i in range(len(df))
    ]
    np.testing.assert_array_equal(got["card_count_1h"].to_numpy(), want)


def test_kernels_under_disable_jit_match_compiled(tmp_path) -> None:
    code = (
        "import numpy as np, sys\n"
        "from riskflow.batch import TxBatch, LabelBatch\n"
        "from riskflow.features import FeatureEngine\n"
        "from riskflow.features._bench import synthetic_stream, _synthetic_labels\n"
        "from riskflow.config import FeatureConfig\n"
        "df = synthetic_stream(150, seed=5); lb = _synthetic_labels(df, 5)\n"
        "e = FeatureEngine(FeatureConfig(initial_capacity=16))\n"
        "X = e.process(TxBatch.from_frame(df), LabelBatch.join(lb, df))\n"
        "np.save(sys.argv[1], X)\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "py.npy")], env=env, check=True, cwd=ROOT
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "jit.npy")], check=True, cwd=ROOT)
    py, jit = np.load(tmp_path / "py.npy"), np.load(tmp_path / "jit.npy")
    assert py.shape == jit.shape and np.isfinite(jit).sum() > 1000
    np.testing.assert_allclose(py, jit, rtol=1e-5, atol=1e-5)
