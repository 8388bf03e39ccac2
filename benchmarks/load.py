"""Load and completion timing: requests, a burst or paced producer, a reader of the executed topic."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

READY_TIMEOUT_S = 30.0


def requests(tag: str, n: int, states: int) -> list[tuple[str, str, bytes]]:
    """(request_id, state_id, wire bytes) of n auto-approved json.merge requests over `states` state ids."""
    out = []
    now = datetime.now(UTC).isoformat()
    for i in range(n):
        state_id = f"{tag}/s{i % states}"
        request_id = f"{tag}-r{i}"
        message = {
            "message_id": str(uuid.uuid4()),
            "message_type": "MutationRequested",
            "schema_version": 1,
            "occurred_at": now,
            "request_id": request_id,
            "state_id": state_id,
            "state_type": "document",
            "mutation_type": "json.merge",
            "payload": {"merge": {f"field{i % 7}": i}},
            "intent": {"operation_name": "bench", "risk_level": "low", "tags": []},
            "requester": {"actor_id": "bench", "actor_type": "service"},
        }
        out.append((request_id, state_id, json.dumps(message).encode()))
    return out


async def open_producer(bootstrap: str) -> AIOKafkaProducer:
    """A plain producer, as any client would have (linger 0, acks=1)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="bench-load")
    await producer.start()
    return producer


async def send(
    producer: AIOKafkaProducer, topic: str, items: list[tuple[str, str, bytes]], rate: float | None
) -> dict[str, float]:
    """Send all items (burst when rate is None, else paced at `rate`/s); returns request_id -> submit time."""
    sent: dict[str, float] = {}
    futures = []
    start = time.monotonic()
    for i, (request_id, state_id, raw) in enumerate(items):
        if rate is not None:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        sent[request_id] = time.monotonic()
        futures.append(await producer.send(topic, raw, key=state_id.encode()))
    await asyncio.wait_for(asyncio.gather(*futures), 60)
    return sent


@dataclass
class Reader:
    """Reads a topic from the start and timestamps the first sighting of each request_id."""

    consumer: AIOKafkaConsumer
    want_type: str | None  # only messages of this message_type count as completions (None: all)
    seen: dict[str, float] = field(default_factory=dict)
    other: dict[str, int] = field(default_factory=dict)  # message_type -> count of the rest
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100, max_records=2000)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    doc = json.loads(r.value)
                    kind = doc.get("message_type")
                    if self.want_type is None or kind == self.want_type:
                        self.seen.setdefault(doc["request_id"], now)
                    else:
                        self.other[kind] = self.other.get(kind, 0) + 1
            if batch:
                self._changed.set()

    async def wait_count(self, ids: set[str], timeout: float) -> bool:
        """True once every id in `ids` was seen; False at timeout or if failures show up."""
        deadline = time.monotonic() + timeout
        while not ids <= self.seen.keys():
            if self.other.get("MutationFailed"):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()


async def open_reader(bootstrap: str, topic: str, want_type: str | None) -> Reader:
    """Start a reader in its own group (earliest, fetch_max_wait_ms=10) and wait until it holds partitions."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    reader = Reader(consumer, want_type)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"reader of {topic} got no partitions in {READY_TIMEOUT_S} s")
            await consumer.getmany(timeout_ms=50)  # joins the group; the topic is empty so nothing is lost
    except BaseException:
        await consumer.stop()
        raise
    reader._task = asyncio.create_task(reader._run())
    return reader


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def latencies_ms(sent: dict[str, float], seen: dict[str, float]) -> list[float]:
    """submit -> completion, in ms, for every request seen."""
    return [(seen[r] - t) * 1000 for r, t in sent.items() if r in seen]
