from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskflow.report import RunView, render_report

DAY = 86_400_000


def _runs() -> list[RunView]:
    rng = np.random.default_rng(1)
    n = 5000
    y = (rng.random(n) < 0.02).astype(int)
    s = np.clip(rng.beta(1, 15, n) + y * rng.beta(3, 2, n), 0, 1)
    days = 1_767_225_600_000 + np.arange(10) * DAY
    out = []
    for policy, total in (("static", 900.0), ("controller", 700.0)):
        metrics = {
            "roc_auc": 0.97,
            "average_precision": 0.61,
            "recall_at_fpr": {"0.001": 0.2, "0.003": 0.35, "0.01": 0.5},
            "precision_top_k_per_day": 0.3,
            "cost": {"total": total, "fraud_loss": total - 100, "review": 100.0},
            "decline_rate": 0.003,
            "review_rate": 0.011,
        }
        daily = pd.DataFrame(
            {"day": days, "cost": total / 10, "decline_rate": 0.003, "review_rate": 0.01, "n": 500}
        )
        th = pd.DataFrame({"ts": days, "t_review": 0.5, "t_decline": 0.9})
        out.append(
            RunView(
                f"m1 / {policy}", "m1", policy, metrics, s, y, daily, th, {"New device <b>": 12}
            )
        )
    return out


def test_report_is_self_contained_and_complete() -> None:
    html = render_report(
        _runs(),
        summary={"transactions": 5000},
        feature_importance={"m1": {"f": 1.0}},
        images=[("policy plot", b"\x89PNG\r\n\x1a\n")],
    )
    assert html.startswith("<!doctype html>")
    # no scripts, no external fetches: one file a risk lead can mail around
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for heading in (
        "Comparison",
        "Precision-recall",
        "ROC",
        "Score distribution",
        "Cost per day",
        "Thresholds",
        "Top reason codes",
        "Feature importance",
    ):
        assert heading in html
    assert html.count("<tr") == 3  # header + two runs
    assert '<tr class="best"><td>m1 / controller' in html  # lowest total cost highlighted
    assert "New device &lt;b&gt;" in html  # user text escaped
    assert "data:image/png;base64," in html


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if shutil.which("chromium") is None:
        why = "headless Chromium not installed (make browser, or apt-get install chromium)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    page = tmp_path / "report.html"
    page.write_text(render_report(_runs()))
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1800",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a blank page is a few KB
