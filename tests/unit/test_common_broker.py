"""consumer_kwargs and make_broker defaults (no broker needed)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from faststream import AckPolicy

from services.common.broker import AssignmentTracker, consumer_kwargs, make_broker
from services.common.settings import Settings


def test_consumer_kwargs_follow_settings() -> None:
    kwargs = consumer_kwargs(
        Settings(fetch_max_wait_ms=7, session_timeout_ms=3000, heartbeat_interval_ms=500)
    )
    assert kwargs == {
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 7,
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
        "max_poll_interval_ms": 120_000,
        "rebalance_timeout_ms": 40_000,
    }


def test_consumer_kwargs_refuse_poll_interval_below_retry_budget() -> None:
    with pytest.raises(ValueError, match="retry budget"):
        consumer_kwargs(Settings(max_poll_interval_ms=10_000, infra_retry_timeout_s=30))


def test_make_broker_nacks_on_error_by_default() -> None:
    broker = make_broker(Settings(), client_id="unit")
    subscriber = broker.subscriber("t", group_id="g")
    assert subscriber.ack_policy is AckPolicy.NACK_ON_ERROR


async def test_a_rebalance_waits_for_the_batch_in_hand() -> None:
    tracker = AssignmentTracker(drain_timeout_s=5)
    partition = TopicPartition("t", 0)
    await tracker.on_partitions_assigned({partition})
    finished: list[str] = []

    async def batch() -> None:
        async with tracker.handling():
            await asyncio.sleep(0.2)
            finished.append("batch")

    running = asyncio.create_task(batch())
    await asyncio.sleep(0.05)
    await tracker.on_partitions_revoked({partition})
    finished.append("revoked")
    await running

    assert finished == ["batch", "revoked"] and not tracker.assigned.is_set()


async def test_a_rebalance_stops_waiting_for_a_stuck_batch_after_the_drain_timeout() -> None:
    tracker = AssignmentTracker(drain_timeout_s=0.1)
    async with tracker.handling():
        await asyncio.wait_for(tracker.on_partitions_revoked(set()), timeout=1)
