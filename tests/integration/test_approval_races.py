"""Votes racing on one quorum, through the real approval handler and the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import topics
from contracts.catalog import messages_for
from services.approval.handlers import make_handle
from services.cli.demo import demo_key
from services.cli.votes import signed_vote
from services.common.consumer import BatchConsumer
from services.common.directory import load_directory
from services.common.service import Runtime
from services.common.settings import Settings
from services.domain.intake import submit
from services.domain.model import StateDocument, Status
from services.domain.voting import CastVote, Principal, cast_vote
from services.store.db import make_engine
from services.store.errors import ConcurrencyConflict
from services.store.migrate import migrate
from services.store.uow import Store
from tests.support.factories import registry, review_policies, risky_flag_command


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


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


def consumer(store: Store, settings: Settings) -> BatchConsumer:
    """An approval consumer with its own Store, as a second service instance would have."""
    runtime = Runtime("approval", settings, store, Redis.from_url(settings.redis_url))
    return BatchConsumer(service="approval", group="approval", store=store, settings=settings,
                         allowed={topics.APPROVALS: messages_for(topics.APPROVALS)},
                         handle=make_handle(runtime, load_directory(settings)), dedupe_by_position=True)


async def seed_step_two_open(store: Store) -> str:
    """A pending request whose first step alice already satisfied; step 2 needs 2 of security."""
    now = datetime.now(UTC)
    cmd = risky_flag_command(request_id=f"race-{uuid.uuid4().hex[:8]}", state_id=f"flags/{uuid.uuid4().hex[:6]}")
    request = submit(cmd, StateDocument(state_id=cmd.state_id, state_type=cmd.state_type), review_policies(),
                     registry(), now)
    request = cast_vote(request, CastVote(principal=Principal("alice"), approval_round=1, decision="approve"), now)
    async with store.begin() as tx:
        await tx.save_request(request, new=True)
    return request.request_id


def vote_record(request, who: str, offset: int) -> Record:
    doc = signed_vote(request, who, demo_key(who), "approve")
    return Record(topics.APPROVALS, 0, offset, request.state_id.encode(), json.dumps(doc).encode())


@pytest.mark.postgres
async def test_two_votes_completing_a_quorum_at_once_give_one_quorum_decision(
        postgres_url: str, tmp_path: Path) -> None:
    await migrate(postgres_url)
    settings = Settings(database_url=postgres_url, redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path)
    engines = [make_engine(postgres_url) for _ in range(2)]
    try:
        request_id = await seed_step_two_open(Store(engines[0]))
        async with Store(engines[0]).begin() as tx:
            request = await tx.get_request(request_id)
        assert request is not None
        barrier, conflicts = asyncio.Barrier(2), []
        first = consumer(RacingStore(engines[0], barrier, conflicts), settings)
        second = consumer(RacingStore(engines[1], barrier, conflicts), settings)

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
