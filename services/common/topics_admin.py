"""Create the topic catalog explicitly and check partition counts (services never create topics)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code

from contracts.topics import ALL_TOPICS
from services.common.settings import Settings

# Metadata for a topic created a moment ago can lag on a real cluster; retry these codes briefly.
_NOT_YET_VISIBLE = {UnknownTopicOrPartitionError.errno, 5}  # 5 = LEADER_NOT_AVAILABLE
_DESCRIBE_ATTEMPTS = 20


class TopicLayoutError(RuntimeError):
    """A topic exists with a different partition count, or could not be created or described."""


async def ensure_topics(bootstrap: str, names: list[str], partitions: int, *, replication: int = 1) -> None:
    """Create the missing topics with `partitions` partitions, then verify every topic has exactly that many."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mutator-topics-admin")
    await admin.start()
    try:
        await _create_missing(admin, names, partitions, replication)
        counts = await _partition_counts(admin, names)
    finally:
        await admin.close()
    # A pre-existing topic with another count would silently break per-state ordering
    # assumptions and consumer scaling (the broker cannot add partitions: no CreatePartitions).
    wrong = {name: n for name, n in counts.items() if n != partitions}
    if wrong:
        detail = ", ".join(f"{name} has {n}" for name, n in sorted(wrong.items()))
        raise TopicLayoutError(f"expected {partitions} partitions per topic: {detail}")


async def ensure_catalog(settings: Settings) -> list[str]:
    """Ensure every catalog topic (with the settings' prefix) exists; returns the full names."""
    names = [settings.topic(name) for name in ALL_TOPICS]
    await ensure_topics(settings.kafka_bootstrap, names, settings.partitions)
    return names


async def _create_missing(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, replication: int
) -> None:
    """CreateTopics for all names; 'already exists' (36) counts as success."""
    response = await admin.create_topics([NewTopic(name, partitions, replication) for name in names])
    failures: list[str] = []
    for entry in response.to_object()["topic_errors"]:
        code = entry["error_code"]
        if code and code != TopicAlreadyExistsError.errno:
            message = entry.get("error_message") or for_code(code).__name__
            failures.append(f"{entry['topic']}: [{code}] {message}")
    if failures:
        raise TopicLayoutError("could not create topics: " + "; ".join(failures))


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count per topic from cluster metadata, retrying while a new topic is not yet visible."""
    pending = set(names)
    counts: dict[str, int] = {}
    for _ in range(_DESCRIBE_ATTEMPTS):
        described: list[dict[str, Any]] = await admin.describe_topics(sorted(pending))
        for topic in described:
            code = topic["error_code"]
            if code in _NOT_YET_VISIBLE:
                continue
            if code:
                raise TopicLayoutError(f"describe {topic['topic']}: [{code}] {for_code(code).__name__}")
            counts[topic["topic"]] = len(topic["partitions"])
            pending.discard(topic["topic"])
        if not pending:
            return counts
        await asyncio.sleep(0.1)
    raise TopicLayoutError(f"topics not visible in metadata after creation: {sorted(pending)}")
