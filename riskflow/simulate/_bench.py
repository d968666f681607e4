"""Throughput of the simulator, for ``riskflow bench simulate``."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from riskflow.simulate.config import SimulationConfig
from riskflow.simulate.engine import iter_chunks, simulate


def bench_simulate(
    preset: str = "bench", *, seed: int = 0, out_dir: str | Path | None = None, write: bool = True
) -> dict[str, Any]:
    """Run one preset once and time it (wall clock, world building included)."""
    cfg = SimulationConfig.preset(preset, seed=seed)
    tmp = None
    t0 = time.perf_counter()
    size = 0
    if write:
        if out_dir is None:
            tmp = tempfile.mkdtemp(prefix="riskflow-bench-sim-")
            out_dir = tmp
        try:
            summary = simulate(cfg, out_dir, overwrite=True)
            elapsed = time.perf_counter() - t0
            for root, _, files in os.walk(out_dir):
                size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        n, fraud = summary.transactions, summary.fraud_rate
    else:
        n = n_fraud = 0
        for tx, _ in iter_chunks(cfg):
            n += len(tx)
            n_fraud += int(tx["is_fraud"].sum())
        elapsed = time.perf_counter() - t0
        fraud = n_fraud / max(n, 1)
    return {
        "benchmark": "simulate",
        "preset": preset,
        "customers": cfg.customers,
        "days": cfg.days,
        "transactions": n,
        "fraud_rate": round(fraud, 6),
        "elapsed_s": round(elapsed, 3),
        "tx_per_s": round(n / elapsed, 1) if elapsed > 0 else 0.0,
        "write": write,
        "bytes_written": size,
        "cpu_count": os.cpu_count(),
    }
