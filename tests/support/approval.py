"""Drive the real approval handler with Kafka-shaped records against a real database."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

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
from services.domain.model import MutationRequest, StateDocument
from services.domain.voting import CastVote, Principal, cast_vote
from services.store.uow import Store
from tests.support.factories import registry, review_policies, risky_flag_command


@dataclass(frozen=True)
class Record:
    """The fields of a Kafka record the consumer reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def approval_consumer(store: Store, settings: Settings) -> BatchConsumer:
    """The approval service's consumer on `store`, as one service instance has it."""
    runtime = Runtime("approval", settings, store, Redis.from_url(settings.redis_url))
    return BatchConsumer(service="approval", group="approval", store=store, settings=settings,
                         allowed={topics.APPROVALS: messages_for(topics.APPROVALS)},
                         handle=make_handle(runtime, load_directory(settings)), dedupe_by_position=True)


async def seed_review(store: Store, *, first_step_by: str | None = None) -> MutationRequest:
    """A pending 3-step review request (alice; 2 of security; finance-approver), saved."""
    now = datetime.now(UTC)
    cmd = risky_flag_command(request_id=f"rev-{uuid.uuid4().hex[:8]}", state_id=f"flags/{uuid.uuid4().hex[:6]}")
    request = submit(cmd, StateDocument(state_id=cmd.state_id, state_type=cmd.state_type), review_policies(),
                     registry(), now)
    if first_step_by:
        vote = CastVote(principal=Principal(first_step_by), approval_round=1, decision="approve")
        request = cast_vote(request, vote, now)
    async with store.begin() as tx:
        return await tx.save_request(request, new=True)


def vote_record(request: MutationRequest, who: str, offset: int, key: str | None = None) -> Record:
    """A signed approval by `who` as a record at `offset` (the bundled demo key unless `key` is given)."""
    doc = signed_vote(request, who, key or demo_key(who), "approve")
    return Record(topics.APPROVALS, 0, offset, request.state_id.encode(), json.dumps(doc).encode())


def settings_for(database_url: str, **extra: object) -> Settings:
    """Settings for driving the approval handler directly (Redis is not used by it)."""
    return Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0", **extra)
