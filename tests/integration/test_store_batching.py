"""The unit of work's batched writes: new rows buffered until flush, with the same conflict rules."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.domain.model import Change, StateDocument, Status
from services.store.errors import ConcurrencyConflict
from services.store.tables import state_history
from services.store.uow import Store
from tests.integration.test_store import NOW, make_request, uid


async def test_a_state_created_and_changed_in_one_transaction_is_one_row_with_all_its_history(
        store: Store) -> None:
    state_id = uid("state")
    async with store.begin() as tx:
        for version in (1, 2, 3):
            await tx.save_state(StateDocument(state_id=state_id, version=version, data={"v": version}),
                                expected_version=version - 1, request_id=f"r{version}",
                                changes=[Change(op="add", path=f"/v{version}", new=version)])
        assert (await tx.get_state(state_id)).version == 3  # type: ignore[union-attr]

    async with store.begin() as tx:
        assert (await tx.get_state(state_id)) == StateDocument(state_id=state_id, version=3, data={"v": 3})
        assert await tx.changed_paths_since(state_id, 1) == ["/v2", "/v3"]
        count = await tx.conn.scalar(select(func.count()).where(state_history.c.state_id == state_id))
    assert count == 3


async def test_a_stale_expected_version_in_the_same_transaction_is_a_conflict(store: Store) -> None:
    state_id = uid("state")
    async with store.begin() as tx:
        await tx.save_state(StateDocument(state_id=state_id, version=1), expected_version=0, request_id="a",
                            changes=[])
        with pytest.raises(ConcurrencyConflict):
            await tx.save_state(StateDocument(state_id=state_id, version=1), expected_version=0,
                                request_id="b", changes=[])


async def test_a_request_created_and_updated_in_one_transaction_is_stored_at_its_last_revision(
        store: Store) -> None:
    request = make_request()
    async with store.begin() as tx:
        created = await tx.save_request(request, new=True)
        updated = await tx.save_request(created.model_copy(update={"status": Status.approved}), new=False)
        with pytest.raises(ConcurrencyConflict):
            await tx.save_request(created, new=False)  # revision 1 is gone already

    async with store.begin() as tx:
        stored = await tx.get_request(request.request_id)
    assert stored is not None and (stored.revision, stored.status) == (2, Status.approved) == (
        updated.revision, updated.status)


async def test_creating_a_request_another_transaction_created_fails_at_commit(store: Store) -> None:
    request = make_request()
    async with store.begin() as tx:
        await tx.save_request(request, new=True)

    with pytest.raises(ConcurrencyConflict):
        async with store.begin() as tx:
            await tx.save_request(request, new=True)  # not read first, so only the insert can tell


async def test_a_read_only_transaction_does_not_wait_for_the_sqlite_write_lock(
        store: Store, engine: AsyncEngine, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the write lock under test is SQLite's")
    request = make_request()
    async with store.begin() as tx:
        await tx.save_request(request, new=True)
    writer = await engine.connect()
    await writer.begin()  # BEGIN IMMEDIATE: holds SQLite's single write lock
    try:
        async def read() -> object:
            async with store.begin(read_only=True) as tx:
                return await tx.get_request(request.request_id)

        assert await asyncio.wait_for(read(), timeout=2) is not None
    finally:
        await writer.rollback()
        await writer.close()


async def test_every_decision_of_a_request_is_also_a_row_in_order(store: Store) -> None:
    from services.domain import decisions
    from services.store.tables import request_decision

    request = make_request()
    async with store.begin() as tx:
        created = await tx.save_request(request, new=True)
    later = created.model_copy(update={
        "decisions": (*created.decisions, decisions.lifecycle("approved", NOW, "ok"),
                      decisions.lifecycle("executed", NOW, None))})
    async with store.begin() as tx:  # not read first: the stored count decides what is new
        await tx.save_request(later, new=False)

    async with store.begin(read_only=True) as tx:
        rows = (await tx.conn.execute(select(request_decision.c.sequence, request_decision.c.code)
                                      .where(request_decision.c.request_id == request.request_id)
                                      .order_by(request_decision.c.sequence))).all()
    assert [tuple(r) for r in rows] == [(n, d.code) for n, d in enumerate(later.decisions)]
