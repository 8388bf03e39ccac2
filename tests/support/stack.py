"""Run the four services as real processes against a real broker, Redis and database, for e2e tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text

from contracts import topics
from services.cli.devstack import Stack, start_services
from services.common.settings import Settings
from services.common.topics_admin import ensure_catalog
from services.store.db import make_engine
from services.store.migrate import migrate


async def start_stack(settings: Settings) -> Stack:
    """Migrate, create the topics and start intake, approval, execution and audit; wait until ready."""
    await migrate(settings.database_url)
    await ensure_catalog(settings)
    stack = Stack()
    await start_services(settings, stack)
    return stack


def stack_settings(kafka: str, redis: str, database_url: str, data_dir: Path, **extra: Any) -> Settings:
    """Settings of one isolated stack: its own topic prefix and database."""
    return Settings(kafka_bootstrap=kafka, redis_url=redis, database_url=database_url, data_dir=data_dir,
                    topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.", session_timeout_ms=6000, start_kafka=False,
                    start_redis=False, partitions=3, **extra)


@dataclass
class Client:
    """A plain-Kafka producer and an events reader, as any client of the service would have."""

    settings: Settings
    producer: AIOKafkaProducer
    events: AIOKafkaConsumer
    seen: list[dict[str, Any]]

    async def send(self, topic: str, value: bytes | dict[str, Any], key: str | None) -> None:
        """Publish raw bytes or a JSON object (plain JSON, as any Kafka client would)."""
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(self.settings.topic(topic), raw, key=key.encode() if key else None)

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], count: int = 1,
                       timeout: float = 30) -> list[dict[str, Any]]:
        """Events seen so far or arriving within `timeout` that satisfy `match` (at least `count`)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.seen if match(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            batch = await self.events.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    doc = json.loads(r.value)
                    doc["_topic"] = r.topic
                    self.seen.append(doc)


async def open_client(settings: Settings) -> Client:
    """A producer plus a reader of decisions, executions and dead letters from the beginning."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    events = AIOKafkaConsumer(
        *[settings.topic(t) for t in (topics.DECISIONS, topics.EXECUTIONS, topics.DEAD_LETTER)],
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"e2e-reader-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", fetch_max_wait_ms=10, session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )
    await events.start()
    return Client(settings, producer, events, [])


async def _audit_poll(settings: Settings, where: str, value: str, done: Callable[[list[str]], bool],
                      timeout: float) -> list[str]:
    """Message types of the audit rows matching `where`, polled until `done` holds for them or timeout."""
    engine = make_engine(settings.database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with engine.connect() as conn:
                rows = await conn.execute(text(f"SELECT message_type FROM audit_log WHERE {where} = :v ORDER BY seq"),
                                          {"v": value})
                found = [str(r[0]) for r in rows]
            if done(found) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def audit_types(settings: Settings, request_id: str, want: set[str], timeout: float = 20) -> list[str]:
    """Message types the audit log holds for a request, once it holds all of `want` (or at timeout)."""
    return await _audit_poll(settings, "request_id", request_id, lambda found: want <= set(found), timeout)


async def audited(settings: Settings, message_id: str, timeout: float = 20) -> str | None:
    """The message type the audit log recorded for `message_id`, once it does (None at timeout)."""
    found = await _audit_poll(settings, "message_id", message_id, bool, timeout)
    return found[0] if found else None
