"""The outbox relay against real SQLite and PostgreSQL: order, deletion, failure isolation, lease, wake-up."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.outbox import OutboxRelay
from services.store.tables import outbox
from services.store.uow import Store

Sent = list[tuple[str, str, bytes, dict[str, str] | None]]


def recorder(sent: Sent, fail_keys: frozenset[str] = frozenset()) -> Any:
    async def send(topic: str, key: str, payload: bytes, headers: dict[str, str] | None) -> None:
        if key in fail_keys:
            raise ConnectionError(f"broker refused {key}")
        sent.append((topic, key, payload, headers))

    return send


async def add(store: Store, service: str, rows: list[tuple[str, bytes]]) -> list[str]:
    """Queue (key, payload) rows; returns their message ids."""
    ids = []
    async with store.begin() as tx:
        for key, payload in rows:
            ids.append(f"m-{uuid.uuid4().hex}")
            await tx.add_outbox(service, "topic.v1", key, ids[-1], "Thing", payload, {"h": key})
    return ids


async def remaining(engine: AsyncEngine, service: str) -> list[Any]:
    async with engine.connect() as conn:
        result = await conn.execute(select(outbox).where(outbox.c.service == service).order_by(outbox.c.id))
        return list(result)


def service_name() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def test_relay_publishes_in_order_and_deletes(store: Store, engine: AsyncEngine) -> None:
    service, other, sent = service_name(), service_name(), []
    rows = [("k1", b'{"n":1}'), ("k2", b'{"n":2}'), ("k1", '{"n":"ü"}'.encode()), ("k2", b'{"n":4}')]
    await add(store, service, rows)
    await add(store, other, [("k1", b"{}")])
    relay = OutboxRelay(store, service, recorder(sent), holder_id="a")
    assert await relay.drain() == 4
    assert [(key, payload) for _topic, key, payload, _h in sent] == rows
    assert sent[0][3] == {"h": "k1"} and sent[0][0] == "topic.v1"
    assert await remaining(engine, service) == []
    assert len(await remaining(engine, other)) == 1  # another service's rows are not ours to publish
    assert await relay.drain() == 0


async def test_relay_awaits_acks_in_order(store: Store, engine: AsyncEngine) -> None:
    """Like aiokafka: send() enqueues and returns a future that resolves (or fails) on the broker's ack."""
    service, acked = service_name(), []
    await add(store, service, [("k1", b"1"), ("k2", b"2"), ("k1", b"3")])
    loop = asyncio.get_running_loop()

    async def send(
        topic: str, key: str, payload: bytes, headers: dict[str, str] | None
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = loop.create_future()
        if key == "k2":
            loop.call_later(0.01, ack.set_exception, TimeoutError("no ack"))
        else:
            loop.call_later(0.05 if payload == b"1" else 0.0, ack.set_result, None)
            ack.add_done_callback(lambda _f: acked.append(payload))
        return ack

    relay = OutboxRelay(store, service, send, holder_id="a", max_attempts=5)
    assert await relay.drain() == 2
    assert sorted(acked) == [b"1", b"3"]
    [row] = await remaining(engine, service)
    assert (row.key, row.attempts, row.failed_at) == ("k2", 1, None)
    assert row.last_error == "TimeoutError: no ack"


async def test_failing_key_is_marked_failed_and_blocks_only_its_key(
    store: Store, engine: AsyncEngine
) -> None:
    service, sent = service_name(), []
    await add(store, service, [("bad", b"b1"), ("good", b"g1"), ("bad", b"b2"), ("good", b"g2")])
    relay = OutboxRelay(store, service, recorder(sent, frozenset({"bad"})), holder_id="a", max_attempts=3)
    assert await relay.drain() == 2
    for _ in range(3):
        assert await relay.drain() == 0
    bad = await remaining(engine, service)
    assert [(r.payload, r.attempts, r.failed_at is not None) for r in bad] == [
        ("b1", 3, True),
        ("b2", 0, False),
    ]
    assert "ConnectionError" in bad[0].last_error

    # The broker is healthy again, but b2 must not overtake the failed b1; other keys go on.
    sent.clear()
    healthy = OutboxRelay(store, service, recorder(sent), holder_id="a", max_attempts=3)
    await add(store, service, [("bad", b"b3"), ("good", b"g3")])
    assert await healthy.drain() == 1
    assert [p for _t, _k, p, _h in sent] == [b"g3"]
    assert [r.payload for r in await remaining(engine, service)] == ["b1", "b2", "b3"]


async def test_only_the_lease_holder_publishes(store: Store, engine: AsyncEngine) -> None:
    service, sent_a, sent_b = service_name(), [], []
    a = OutboxRelay(store, service, recorder(sent_a), holder_id="a", lease_s=0.5)
    b = OutboxRelay(store, service, recorder(sent_b), holder_id="b", lease_s=0.5)
    await add(store, service, [("k", b"1")])
    results = await asyncio.gather(a.drain(), b.drain())
    assert sorted(results) == [0, 1]
    holder, idle = (a, b) if results[0] == 1 else (b, a)
    await add(store, service, [("k", b"2")])
    assert await idle.drain() == 0  # the lease is still live
    await asyncio.sleep(0.6)
    assert await idle.drain() == 1  # expired: taken over
    await add(store, service, [("k", b"3")])
    assert await holder.drain() == 0  # lost its lease to the other relay
    assert await idle.drain() == 1
    assert len(sent_a) + len(sent_b) == 3 and await remaining(engine, service) == []


async def test_run_wakes_on_commit_and_releases_lease_on_stop(store: Store, engine: AsyncEngine) -> None:
    service, sent = service_name(), []
    relay = OutboxRelay(
        store, service, recorder(sent), holder_id="a", poll_s=30
    )  # only a wake can trigger it
    store.on_commit.append(relay.wake)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.1)  # let its first (empty) pass finish, so only the wake remains
    await add(store, service, [("k", b"1"), ("k", b"2")])
    async with asyncio.timeout(5):
        while len(sent) < 2:
            await asyncio.sleep(0.01)
    relay.stop()
    await asyncio.wait_for(task, 5)
    # Stopped: a successor takes over at once instead of waiting for the lease to expire.
    successor, later = OutboxRelay(store, service, recorder(sent), holder_id="b"), []
    await add(store, service, [("k", b"3")])
    successor.send = recorder(later)
    assert await successor.drain() == 1 and [p for _t, _k, p, _h in later] == [b"3"]
    async with engine.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).select_from(outbox).where(outbox.c.service == service))
            == 0
        )


async def test_published_rows_are_deleted_later_in_bulk_and_never_sent_twice(
        store: Store, engine: AsyncEngine) -> None:
    service, sent = service_name(), []
    relay = OutboxRelay(store, service, recorder(sent), holder_id="a", poll_s=0.2)
    await add(store, service, [("k1", b"1"), ("k2", b"2")])

    assert await relay._pass() == (2, 2, False)
    await add(store, service, [("k1", b"3")])
    assert await relay._pass() == (1, 1, False)  # reads past the published rows still in the table
    assert len(await remaining(engine, service)) == 3
    await asyncio.sleep(0.25)
    assert await relay._pass() == (0, 0, False)  # the delete is due: one write deletes all three

    assert [payload for _t, _k, payload, _h in sent] == [b"1", b"2", b"3"]
    assert await remaining(engine, service) == []


async def test_a_poll_with_a_fresh_lease_reads_without_the_sqlite_write_lock(
        store: Store, engine: AsyncEngine, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the write lock under test is SQLite's")
    service, sent = service_name(), []
    relay = OutboxRelay(store, service, recorder(sent), holder_id="a")
    await relay.drain()  # claims the lease; nothing left to delete
    writer = await engine.connect()
    await writer.begin()  # BEGIN IMMEDIATE: holds SQLite's single write lock
    try:
        assert await asyncio.wait_for(relay._pass(), timeout=2) == (0, 0, False)
    finally:
        await writer.rollback()
        await writer.close()
