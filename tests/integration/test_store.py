"""The governance store against real SQLite and PostgreSQL: migrations, CAS, history, dedupe, audit chain."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.domain.model import Actor, Change, Intent, MutationRequest, StateDocument, Status, Strategy
from services.store.audit import verify_audit_chain
from services.store.errors import ConcurrencyConflict
from services.store.migrate import migrate
from services.store.tables import audit_log, metadata
from services.store.uow import AuditEntry, Store

NOW = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_request(state_id: str | None = None, **over: Any) -> MutationRequest:
    fields: dict[str, Any] = {
        "request_id": uid("req"),
        "state_id": state_id or uid("state"),
        "state_type": "document",
        "mutation_type": "json.merge",
        "payload": {"patch": {"a": 1, "ü": "ß"}},
        "intent": Intent(tags=("x",)),
        "requester": Actor(actor_id="alice"),
        "base_version": 0,
        "resolution_strategy": Strategy.reject_stale,
        "status": Status.pending,
        "intent_hash": "ih",
        "body_hash": "bh",
        "created_at": NOW,
        "updated_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
    }
    return MutationRequest(**{**fields, **over})


async def test_migrations_match_metadata(engine: AsyncEngine, db_url: str) -> None:
    await migrate(db_url)  # a second run is a no-op

    def diff(conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        return compare_metadata(context, metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_request_roundtrip(store: Store) -> None:
    request = make_request()
    async with store.begin() as tx:
        saved = await tx.save_request(request, new=True)
    assert saved.revision == 1
    async with store.begin() as tx:
        loaded = await tx.get_request(request.request_id)
        assert await tx.get_request(uid("missing")) is None
    assert loaded == saved
    assert loaded is not None and loaded.created_at.tzinfo is not None and loaded.created_at == NOW


async def test_request_compare_and_set(store: Store) -> None:
    async with store.begin() as tx:
        r1 = await tx.save_request(make_request(), new=True)
    approved = r1.model_copy(update={"status": Status.approved})
    async with store.begin() as tx:
        r2 = await tx.save_request(approved, new=False)
    assert r2.revision == 2
    with pytest.raises(ConcurrencyConflict):
        async with store.begin() as tx:
            await tx.save_request(r1.model_copy(update={"status": Status.canceled}), new=False)
    with pytest.raises(ConcurrencyConflict):
        async with store.begin() as tx:
            await tx.save_request(r1, new=True)
    async with store.begin() as tx:
        current = await tx.get_request(r1.request_id)
    assert current is not None and (current.status, current.revision) == (Status.approved, 2)


async def test_list_requests(store: Store) -> None:
    state_id = uid("state")
    async with store.begin() as tx:
        for i in range(3):
            request = make_request(
                state_id,
                created_at=NOW + timedelta(seconds=i),
                status=Status.pending if i < 2 else Status.rejected,
            )
            await tx.save_request(request, new=True)
        mine = await tx.list_requests(state_id=state_id)
        pending = await tx.list_requests(state_id=state_id, status=Status.pending, limit=1)
        expiring = await tx.list_expiring(NOW + timedelta(hours=2))
    assert [r.created_at for r in mine] == [NOW + timedelta(seconds=i) for i in (2, 1, 0)]
    assert [r.created_at for r in pending] == [NOW + timedelta(seconds=1)]
    assert {r.state_id for r in expiring if r.state_id == state_id} == {state_id}
    assert all(r.status is Status.pending for r in expiring if r.state_id == state_id)


async def test_state_cas_history_and_changed_paths(store: Store) -> None:
    state_id = uid("state")
    v1 = StateDocument(state_id=state_id, version=1, data={"a": 1})
    v2 = StateDocument(state_id=state_id, version=2, data={"a": 2, "b": {"c": True}})
    async with store.begin() as tx:
        assert await tx.get_state(state_id) is None
        await tx.save_state(
            v1, expected_version=0, request_id="r1", changes=[Change(op="add", path="/a", new=1)]
        )
    async with store.begin() as tx:
        await tx.save_state(
            v2,
            expected_version=1,
            request_id="r2",
            changes=[
                Change(op="replace", path="/a", old=1, new=2),
                Change(op="add", path="/b", new={"c": True}),
            ],
        )
    for expected in (0, 1):  # a create that lost, and a stale update
        with pytest.raises(ConcurrencyConflict):
            async with store.begin() as tx:
                stale = StateDocument(state_id=state_id, version=expected + 1, data={})
                await tx.save_state(stale, expected_version=expected, request_id="r3", changes=[])
    async with store.begin() as tx:
        assert await tx.get_state(state_id) == v2
        history = await tx.history(state_id)
        assert await tx.changed_paths_since(state_id, 0) == ["/a", "/b"]
        assert await tx.changed_paths_since(state_id, 1) == ["/a", "/b"]
        assert await tx.changed_paths_since(state_id, 2) == []
    assert [(h.version, h.request_id, h.document) for h in history] == [(2, "r2", v2), (1, "r1", v1)]
    assert history[0].changes[1] == Change(op="add", path="/b", new={"c": True})


async def test_processed_message_dedupe(store: Store) -> None:
    group, ids = uid("group"), [uid("m") for _ in range(3)]
    async with store.begin() as tx:
        assert await tx.processed(group, ids) == set()
        await tx.mark_processed(group, ids[0])
        await tx.mark_processed(group, ids[1])
    async with store.begin() as tx:
        assert await tx.processed(group, ids) == {ids[0], ids[1]}
        assert await tx.processed(uid("other-group"), ids) == set()
        assert await tx.processed(group, []) == set()
    with pytest.raises(ConcurrencyConflict):
        async with store.begin() as tx:
            await tx.mark_processed(group, ids[0])


async def test_on_commit_hooks_run_after_commit_only(store: Store) -> None:
    calls: list[str] = []
    store.on_commit.append(lambda: calls.append("commit"))
    async with store.begin() as tx:
        await tx.mark_processed(uid("g"), uid("m"))
    with pytest.raises(RuntimeError):
        async with store.begin() as tx:
            await tx.mark_processed(uid("g"), uid("m"))
            raise RuntimeError("roll back")
    assert calls == ["commit"]


def audit_entry(message_id: str, n: int) -> AuditEntry:
    return AuditEntry(
        message_id=message_id,
        message_type="RequestDecided",
        topic="mutation.decisions.v1",
        request_id=uid("req"),
        state_id=uid("state"),
        occurred_at=NOW + timedelta(seconds=n),
        payload={"n": n, "nested": {"z": [1, 2.5, None], "a": "ü"}},
    )


async def test_audit_chain_append_verify_and_tamper(store: Store, engine: AsyncEngine) -> None:
    ids = [uid("msg") for _ in range(3)]
    async with store.begin() as tx:
        assert (
            await tx.append_audit([audit_entry(ids[0], 0), audit_entry(ids[1], 1), audit_entry(ids[0], 0)])
            == 2
        )
    async with store.begin() as tx:
        assert await tx.append_audit([audit_entry(ids[1], 1), audit_entry(ids[2], 2)]) == 1
        assert await tx.append_audit([]) == 0
    ok, count = await verify_audit_chain(engine)
    assert ok and count >= 3

    async with engine.begin() as conn:
        seq = await conn.scalar(
            audit_log.select().with_only_columns(audit_log.c.seq).where(audit_log.c.message_id == ids[1])
        )
        await conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(payload={"n": 99}))
    try:
        assert await verify_audit_chain(engine) == (False, seq)
    finally:  # the PostgreSQL database is shared by the session: put the entry back
        async with engine.begin() as conn:
            original = audit_entry(ids[1], 1).payload
            await conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(payload=original))
    assert (await verify_audit_chain(engine))[0]


async def test_concurrent_audit_appends_never_fork(store: Store, engine: AsyncEngine) -> None:
    async def append(n: int) -> int:
        async with store.begin() as tx:
            return await tx.append_audit([audit_entry(uid("msg"), n), audit_entry(uid("msg"), n)])

    assert await asyncio.gather(*(append(n) for n in range(4))) == [2, 2, 2, 2]
    ok, _count = await verify_audit_chain(engine)
    assert ok


async def test_concurrent_request_cas_exactly_one_wins(store: Store) -> None:
    async with store.begin() as tx:
        base = await tx.save_request(make_request(), new=True)

    async def update_from_base(status: Status) -> str:
        try:
            async with store.begin() as tx:
                await tx.save_request(base.model_copy(update={"status": status}), new=False)
                # Hold the transaction open so the other one runs into our row lock (PostgreSQL)
                # or waits at BEGIN IMMEDIATE (SQLite).
                await asyncio.sleep(0.2)
        except ConcurrencyConflict:
            return "lost"
        return "won"

    outcomes = await asyncio.gather(update_from_base(Status.approved), update_from_base(Status.canceled))
    assert sorted(outcomes) == ["lost", "won"]
    async with store.begin() as tx:
        current = await tx.get_request(base.request_id)
    assert current is not None and current.revision == 2
