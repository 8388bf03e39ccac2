"""Kafka-side CLI commands: publish a request, tail decisions and executions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import topics
from contracts.envelope import Envelope
from services.common.settings import Settings


async def publish(settings: Settings, message: Envelope) -> None:
    """Publish one contract message, keyed by its state_id."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        key = getattr(message, "state_id", "")
        await producer.send_and_wait(settings.topic(message.topic), message.to_json(), key=key.encode())
    finally:
        await producer.stop()


def describe(doc: dict[str, Any]) -> str:
    """One readable line for a decision or execution event."""
    kind = doc.get("message_type")
    head = f"{doc.get('occurred_at', '')[:23]} {doc.get('state_id')} {doc.get('request_id')}"
    if kind == "RequestDecided":
        d = doc["decision"]
        pending = f"({doc['pending_reason']})" if doc.get("pending_reason") else ""
        reason = f" — {d['reason']}" if d.get("reason") else ""
        return f"{head} #{doc['sequence']} {d['category']}.{d['code']} -> {doc['status']}{pending}{reason}"
    if kind == "MutationExecuted":
        return (f"{head} EXECUTED v{doc['previous_version']} -> v{doc['resulting_version']} "
                f"({len(doc['changes'])} change(s))")
    if kind == "MutationFailed":
        return f"{head} FAILED {doc['code']}: {doc['reason']} (state stays v{doc['version']})"
    if kind == "ApprovalRefused":
        return f"{head} vote by {doc.get('approver_id')} refused {doc['code']}: {doc['reason']}"
    if kind == "RequestDuplicate":
        return f"{head} DUPLICATE (request is {doc['status']}, revision {doc['revision']})"
    if kind == "MessageRejected":
        return f"{head} DEAD-LETTER {doc['code']}: {doc['reason']} (from {doc['source_topic']})"
    return f"{head} {kind}"


async def watch(settings: Settings, *, from_beginning: bool, emit: Callable[[str], None],
                limit: int | None = None) -> None:
    """Tail decisions, executions and dead letters; stop after `limit` events when given."""
    names = [topics.DECISIONS, topics.EXECUTIONS, topics.DEAD_LETTER]
    consumer = AIOKafkaConsumer(
        *[settings.topic(n) for n in names], bootstrap_servers=settings.kafka_bootstrap, group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest", fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            try:
                emit(describe(json.loads(record.value or b"")))
            except (ValueError, KeyError, TypeError):
                emit(f"unreadable record on {record.topic}/{record.partition}/{record.offset}")
            seen += 1
            if limit is not None and seen >= limit:
                return
    finally:
        await consumer.stop()
