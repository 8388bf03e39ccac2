"""The Kafka broker factory, the consumer settings every subscriber shares, and a readiness listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from services.common.settings import Settings


def consumer_kwargs(settings: Settings) -> dict[str, Any]:
    """Subscriber kwargs every consumer uses: `@broker.subscriber(topic, group_id=..., **consumer_kwargs(s))`."""
    retry_budget_ms = int(settings.infra_retry_timeout_s * 1000)
    # A handler retries infra errors in place; if that outlasts max_poll_interval_ms the
    # consumer is evicted mid-handler and its partitions are redelivered elsewhere.
    if settings.max_poll_interval_ms <= retry_budget_ms:
        raise ValueError(
            f"max_poll_interval_ms ({settings.max_poll_interval_ms}) must exceed the infra retry budget "
            f"({retry_budget_ms} ms)"
        )
    if settings.heartbeat_interval_ms >= settings.session_timeout_ms:
        raise ValueError("heartbeat_interval_ms must be well below session_timeout_ms")
    return {
        # A new group must see everything already on the topic; also avoids the broker's
        # wrong end_offsets, which makes "latest" replay the tail of the last batch.
        "auto_offset_reset": "earliest",
        # The embedded broker does not wake a long-poll fetch on new data: latency ~= this wait.
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        # Rebalances on the embedded broker take about one session timeout; keep it short.
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        # Members get this long to rejoin a rebalance; ours first finish the batch in hand
        # (AssignmentTracker waits up to the retry budget + 5 s), so allow that and a margin.
        "rebalance_timeout_ms": retry_budget_ms + 10_000,
    }


def make_broker(settings: Settings, *, client_id: str) -> KafkaBroker:
    """A KafkaBroker with our defaults: nack-on-error acks, no topic creation, structlog logging."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        # FastStream's default is ACK_FIRST (auto-commit before handling: a crash loses the
        # message). NACK_ON_ERROR seeks back on an exception so nothing is committed past an
        # unprocessed message; handlers bound their own retries and dead-letter poison input.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # `dev up` creates topics with the right partition count; FastStream would create a
        # missing subscriber topic with 1 partition and hide the mistake.
        allow_auto_create_topics=False,
        acks="all",
        # The embedded broker rejects aiokafka's InitProducerId v0; dedupe is done in SQL instead.
        enable_idempotence=False,
        # A lazy proxy, so it renders with whatever configure_logging() set up, even if called later.
        logger=structlog.get_logger(component="faststream", client_id=client_id),
    )


class AssignmentTracker(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records a consumer's assigned partitions; `assigned` is set while it holds at least one."""

    # aiokafka does not call on_partitions_revoked when the consumer stops, so after a
    # stop the event stays set: it answers "has this consumer been ready", not "is it running".

    def __init__(self, drain_timeout_s: float = 30.0) -> None:
        self.partitions: set[TopicPartition] = set()
        self.assigned = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_timeout_s = drain_timeout_s

    @asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
        """Mark a batch as in hand (around the handler), so a rebalance waits for it."""
        self._idle.clear()
        try:
            yield
        finally:
            self._idle.set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Wait for the batch in hand (bounded), then drop revoked partitions; clear readiness if none left."""
        # Without the wait the new owner starts the same batch while we still work on it: harmless
        # (processed_message and compare-and-sets decide) but wasted, and our commit would be lost.
        try:
            await asyncio.wait_for(self._idle.wait(), self._drain_timeout_s)
        except TimeoutError:
            pass  # a batch stuck on infrastructure must not hold the whole group's rebalance forever
        self.partitions -= set(revoked)
        if not self.partitions:
            self.assigned.clear()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Add assigned partitions; announce readiness once any are held."""
        # Union rather than replace: correct for both eager (revoke all, assign all) and
        # incremental rebalances.
        self.partitions |= set(assigned)
        if self.partitions:
            self.assigned.set()

    async def wait_assigned(self, timeout: float) -> None:
        """Wait until a partition is held; raises TimeoutError after `timeout` seconds."""
        # A group with more members than partitions leaves some members idle forever;
        # callers bound the wait and report instead of hanging.
        await asyncio.wait_for(self.assigned.wait(), timeout)
