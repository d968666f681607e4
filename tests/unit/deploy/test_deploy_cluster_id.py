"""The broker script's cluster ids never start with '-' (the storage tool would read it as a flag)."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "cluster_id.py"


@pytest.fixture(scope="module")
def cluster_id():
    spec = importlib.util.spec_from_file_location("cluster_id", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_leading_dash_draw_is_rejected_and_redrawn(cluster_id):
    dash_first = bytes([0xF8]) + bytes(15)  # 0xF8 >> 2 == 62, base64url '-'
    assert base64.urlsafe_b64encode(dash_first).decode().startswith("-")
    draws = iter([dash_first, dash_first, bytes(range(16))])

    cid = cluster_id.new_cluster_id(lambda n: next(draws))

    assert cid == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")


def test_ids_are_kafka_uuids():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    cid = out.stdout.strip()
    assert len(cid) == 22 and not cid.startswith("-")
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
