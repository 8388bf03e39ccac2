"""Builds one consumer service: broker, batch subscriber, store, outbox relay, readiness line.

Each of intake, approval, execution and audit calls `build_service` from its own app.py with
its topics and its batch handler; nothing else differs between them.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream import AckPolicy, FastStream
from faststream.kafka.annotations import KafkaMessage
from redis.asyncio import Redis

from contracts.catalog import messages_for
from services.common.broker import AssignmentTracker, consumer_kwargs, make_broker
from services.common.consumer import BatchConsumer, Guard, Handle
from services.common.logging import configure_logging
from services.common.settings import Settings
from services.store.db import make_engine
from services.store.outbox import OutboxRelay
from services.store.uow import Store

READY_MARK = "mutator-service-ready"


@dataclass
class Runtime:
    """What a service's handlers may use; built before start, connected on start."""

    service: str
    settings: Settings
    store: Store
    redis: Redis
    relay: OutboxRelay | None = None
    producer: AIOKafkaProducer | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


async def _passthrough(msg: Any) -> Any:
    # We decode raw bytes ourselves behind one parse guard (services.common.inbound).
    return msg.body


def build_service(
    settings: Settings,
    *,
    service: str,
    topics: list[str],
    make_handle: Callable[[Runtime], Handle],
    background: Callable[[Runtime], Awaitable[None]] | None = None,
    guard: Callable[[Runtime], Guard] | None = None,
    dead_letter_invalid: bool = True,
    dedupe_by_position: bool = False,
    track_processed: bool = True,
) -> FastStream:
    """A FastStream app consuming `topics` (catalog names) in batches as group `service`."""
    log = configure_logging(settings, service)
    broker = make_broker(settings, client_id=f"mutator-{service}")
    store = Store(make_engine(settings.database_url))
    runtime = Runtime(service, settings, store, Redis.from_url(settings.redis_url))
    consumer = BatchConsumer(
        service=service, group=service, store=store, settings=settings,
        allowed={t: messages_for(t) for t in topics}, handle=make_handle(runtime),
        guard=guard(runtime) if guard else None, dead_letter_invalid=dead_letter_invalid,
        dedupe_by_position=dedupe_by_position, track_processed=track_processed,
    )
    tracker = AssignmentTracker(drain_timeout_s=settings.infra_retry_timeout_s + 5)

    @broker.subscriber(
        *[settings.topic(t) for t in topics], group_id=service, batch=True, max_records=settings.max_batch,
        # Explicit, not inherited: commit the position only after the batch's transaction committed;
        # an exception (infrastructure still down after bounded retries) seeks back and the partition waits.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch_timeout_ms=settings.fetch_max_wait_ms, decoder=_passthrough, listener=tracker,
        **consumer_kwargs(settings),
    )
    async def on_batch(msg: KafkaMessage) -> None:
        async with tracker.handling():
            await consumer.consume(msg.raw_message)

    app = FastStream(broker, logger=log)

    @app.on_startup
    async def start() -> None:
        runtime.producer = producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=1, client_id=f"mutator-{service}-relay")
        await producer.start()
        relay = OutboxRelay(store, service, _sender(producer), poll_s=settings.relay_poll_s,
                            max_attempts=settings.relay_max_attempts, holder_id=f"{socket.gethostname()}:{os.getpid()}")
        store.on_commit.append(relay.wake)
        runtime.tasks.append(asyncio.create_task(relay.run(), name=f"{service}-relay"))
        if background is not None:
            runtime.tasks.append(asyncio.create_task(background(runtime), name=f"{service}-background"))
        runtime.relay = relay

    @app.after_startup
    async def announce() -> None:
        async def ready() -> None:
            await tracker.assigned.wait()
            log.info("partitions assigned", partitions=len(tracker.partitions))
            print(f"{READY_MARK} {service}", flush=True)  # `mutator dev up` waits for this line

        runtime.tasks.append(asyncio.create_task(ready(), name=f"{service}-ready"))

    @app.after_shutdown
    async def stop() -> None:
        relay = runtime.relay
        if relay is not None:
            relay.stop()
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        if relay is not None:
            await relay.drain()
        if runtime.producer is not None:
            await runtime.producer.stop()
        await runtime.redis.aclose()
        await store.engine.dispose()

    return app


def _sender(producer: AIOKafkaProducer) -> Callable[..., Awaitable[Any]]:
    async def send(topic: str, key: str, payload: bytes, headers: dict[str, str] | None = None) -> Any:
        wire_headers = [(k, v.encode()) for k, v in (headers or {}).items()]
        # send() enqueues and returns a future resolved on the broker's ack; the relay awaits
        # the futures in order, so one batch of rows goes out in one round of produce requests.
        return await producer.send(topic, payload, key=key.encode() if key else None, headers=wire_headers)

    return send
