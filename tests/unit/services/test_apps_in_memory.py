"""Each service app wired as in production, driven through FastStream's in-memory TestKafkaBroker.

No network: the broker is in memory and Redis is unreachable on purpose (the lock falls back to the
SQL compare-and-set). The database is a SQLite file, so what the handlers commit can be read back.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from faststream.kafka import TestKafkaBroker
from sqlalchemy import select

from contracts import topics
from services.common.settings import Settings
from services.execution.app import create_app as execution_app
from services.intake.app import create_app as intake_app
from services.store.db import make_engine
from services.store.migrate import migrate
from services.store.tables import outbox
from services.store.uow import Store


def request(state_id: str = "flags/a") -> dict[str, Any]:
    return {"message_id": str(uuid.uuid4()), "message_type": "MutationRequested", "request_id": "r1",
            "state_id": state_id, "mutation_type": "json.merge", "payload": {"merge": {"on": True}},
            "requester": {"actor_id": "bob"}}


async def settings_for(tmp_path: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await migrate(url)
    return Settings(database_url=url, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)


async def outbox_messages(settings: Settings) -> list[dict[str, Any]]:
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return [json.loads(p) for p in (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars()]
    finally:
        await engine.dispose()


async def test_intake_app_approves_a_request_and_queues_its_events(tmp_path: Path) -> None:
    settings = await settings_for(tmp_path)
    app = intake_app(settings)

    async with TestKafkaBroker(app.broker) as broker:
        await broker.publish(json.dumps(request()).encode(), topics.REQUESTS, key=b"flags/a")

    queued = await outbox_messages(settings)
    assert [m["message_type"] for m in queued] == ["RequestDecided", "RequestDecided", "ExecuteApproved"]
    assert [m["decision"]["code"] for m in queued[:2]] == ["submitted", "approved"]


async def test_intake_app_dead_letters_garbage_with_its_bytes(tmp_path: Path) -> None:
    settings = await settings_for(tmp_path)
    app = intake_app(settings)

    async with TestKafkaBroker(app.broker) as broker:
        await broker.publish(b"\xff not json", topics.REQUESTS, key=b"k")

    (dead,) = await outbox_messages(settings)
    assert dead["message_type"] == "MessageRejected" and dead["code"] == "invalid_json"


async def test_execution_app_applies_the_approved_request_without_redis(tmp_path: Path) -> None:
    settings = await settings_for(tmp_path)
    async with TestKafkaBroker(intake_app(settings).broker) as broker:
        await broker.publish(json.dumps(request()).encode(), topics.REQUESTS, key=b"flags/a")
    execute = next(m for m in await outbox_messages(settings) if m["message_type"] == "ExecuteApproved")

    async with TestKafkaBroker(execution_app(settings).broker) as broker:
        await broker.publish(json.dumps(execute).encode(), topics.EXECUTE, key=b"flags/a")

    store = Store(make_engine(settings.database_url))
    try:
        async with store.begin(read_only=True) as tx:
            state, done = await tx.get_state("flags/a"), await tx.get_request("r1")
    finally:
        await store.engine.dispose()
    assert state is not None and (state.version, state.data) == (1, {"on": True})
    assert done is not None and done.status.value == "executed"
    executed = [m for m in await outbox_messages(settings) if m["message_type"] == "MutationExecuted"]
    assert executed[0]["resulting_version"] == 1
