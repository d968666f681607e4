"""The faust app's wiring that decides who commits the input offsets (no broker needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from riskflow.config import Config
from riskflow.streams.app import build_app
from riskflow.streams.reference import CountingScorer


@pytest.mark.parametrize(
    ("guarantee", "faust_acks"), [("at_least_once", True), ("exactly_once", False)]
)
def test_faust_commits_input_offsets_only_at_least_once(
    tmp_path: Path, guarantee: str, faust_acks: bool
) -> None:
    """Under exactly-once only our transactions may write the group's offsets.

    faust commits the acked position of acking topics on a timer, on rebalance
    and at shutdown, from its consumer thread; such a commit landing after a
    transaction that committed further moved the offset back, and a restart
    decided a committed batch again (a read_committed reader saw it twice).
    """
    config = Config.model_validate(
        {"stream": {"processing_guarantee": guarantee, "state_dir": str(tmp_path)}}
    )
    worker = build_app(config, CountingScorer(), web_port=18999)  # never bound here
    assert worker.exactly_once is (not faust_acks)
    for topic in (worker.tx_topic, worker.labels_topic):
        assert topic.acks is faust_acks


def _events(*generations: int) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(generation_id=g)) for g in generations]


def test_a_revocation_waits_for_the_batch_in_flight_and_drops_older_fetches(
    tmp_path: Path,
) -> None:
    """A rebalance may move partitions only once the batch holding the lock is committed.

    Events fetched before the revocation are stale: their partitions' next owner
    fetches them again from the committed offsets, so processing them here too
    would decide them twice under exactly-once.
    """
    config = Config.model_validate(
        {"stream": {"processing_guarantee": "exactly_once", "state_dir": str(tmp_path)}}
    )
    worker = build_app(config, CountingScorer(), web_port=18999)
    worker.app.consumer_generation_id = 4
    assert len(worker._current(_events(4, 4, 3))) == 2  # an older generation's leftover

    async def revoke_while_a_batch_is_in_flight() -> None:
        await worker._lock.acquire()  # a batch is being processed
        revoking = asyncio.ensure_future(worker._on_revoked(worker.app, set()))
        await asyncio.sleep(0.05)
        assert not revoking.done(), "the rebalance went on with a batch in flight"
        worker._lock.release()
        await asyncio.wait_for(revoking, 1.0)

    asyncio.run(revoke_while_a_batch_is_in_flight())
    assert worker._current(_events(4, 4)) == []  # fetched before the revocation
    worker.app.consumer_generation_id = 5  # assigned again
    assert len(worker._current(_events(4, 5, 5))) == 2


def test_at_least_once_keeps_every_event_it_took(tmp_path: Path) -> None:
    """faust acks what the agent took; dropping it could lose its decision."""
    config = Config.model_validate(
        {"stream": {"processing_guarantee": "at_least_once", "state_dir": str(tmp_path)}}
    )
    worker = build_app(config, CountingScorer(), web_port=18999)
    worker.app.consumer_generation_id = 5
    worker._revoked_generation = 5
    assert len(worker._current(_events(4, 5))) == 2


def test_freeze_heap_exempts_the_objects_alive_at_start_up() -> None:
    """After start-up the long-lived heap is frozen: full collections no longer scan it."""
    import gc

    from riskflow.streams.app import freeze_heap

    survivor = [object() for _ in range(1000)]
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(survivor)
    finally:
        gc.unfreeze()
