"""Votes racing on one quorum, through the real approval handler and the real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.domain.model import Status
from services.store.db import make_engine
from services.store.errors import ConcurrencyConflict
from services.store.migrate import migrate
from services.store.uow import Store
from tests.support.approval import approval_consumer, seed_review, settings_for, vote_record


class RacingStore(Store):
    """A Store whose first transaction waits, after reading the request, until the rival read it too."""

    def __init__(self, engine: AsyncEngine, barrier: asyncio.Barrier, conflicts: list[str]) -> None:
        super().__init__(engine)
        self.barrier, self.conflicts, self.raced = barrier, conflicts, False

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        async with super().begin() as tx:
            yield _RacingTx(tx, self)


class _RacingTx:
    def __init__(self, tx: Any, store: RacingStore) -> None:
        self._tx, self._store = tx, store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    async def get_request(self, request_id: str) -> Any:
        found = await self._tx.get_request(request_id)
        if not self._store.raced:
            self._store.raced = True
            await self._store.barrier.wait()  # both transactions now hold the same revision
        return found

    async def save_request(self, request: Any, *, new: bool) -> Any:
        try:
            return await self._tx.save_request(request, new=new)
        except ConcurrencyConflict:
            self._store.conflicts.append(request.request_id)
            raise


@pytest.mark.postgres
async def test_two_votes_completing_a_quorum_at_once_give_one_quorum_decision(
        postgres_url: str, tmp_path: Path) -> None:
    await migrate(postgres_url)
    settings = settings_for(postgres_url, data_dir=tmp_path)
    engines = [make_engine(postgres_url) for _ in range(2)]
    try:
        request = await seed_review(Store(engines[0]), first_step_by="alice")
        request_id = request.request_id
        barrier, conflicts = asyncio.Barrier(2), []
        first = approval_consumer(RacingStore(engines[0], barrier, conflicts), settings)
        second = approval_consumer(RacingStore(engines[1], barrier, conflicts), settings)

        await asyncio.gather(first.consume([vote_record(request, "sam", 1)]),
                             second.consume([vote_record(request, "sue", 2)]))

        async with Store(engines[0]).begin() as tx:
            final = await tx.get_request(request_id)
    finally:
        for engine in engines:
            await engine.dispose()
    assert conflicts == [request_id]  # the race happened: one compare-and-set lost and was retried
    assert final is not None and final.status is Status.pending
    step_two = final.requirements[1]
    assert step_two.status == "satisfied" and set(step_two.approvals) == {"sam", "sue"}
    quorums = [d for d in final.decisions if d.code == "quorum_satisfied" and d.metadata["step"] == 2]
    assert len(quorums) == 1
    assert final.requirements[2].status == "open"
