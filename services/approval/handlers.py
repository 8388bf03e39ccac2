"""Approval: signed votes on pending requests, cancel commands, and the expiry sweeper."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from contracts.approvals import ApprovalSubmitted
from contracts.commands import CancelRequested
from contracts.decisions import ApprovalRefused, CommandRefused
from services.approval.votes import authenticate
from services.common.consumer import Handle, emit, prefetch
from services.common.directory import Directory
from services.common.inbound import Inbound
from services.common.outbound import decided
from services.common.service import Runtime
from services.domain.errors import DomainError
from services.domain.model import Actor
from services.domain.voting import CastVote, VoteRefused, cancel, cast_vote, expire
from services.store.db import is_transient
from services.store.errors import ConcurrencyConflict
from services.store.uow import Tx

log = structlog.get_logger(__name__)


def make_handle(runtime: Runtime, directory: Directory) -> Handle:
    """The approval batch handler: votes and cancel commands, each decided in the batch transaction."""
    settings, service = runtime.settings, runtime.service

    async def on_vote(tx: Tx, item: Inbound, now: datetime) -> None:
        vote = item.message
        assert isinstance(vote, ApprovalSubmitted)
        request = None
        try:
            who = await authenticate(tx, item, directory, settings, now)
            request = await tx.get_request(vote.request_id)
            rejection = vote.rejection.model_dump(mode="json") if vote.rejection else None
            updated = cast_vote(request, CastVote(
                principal=who.principal, approval_round=vote.approval_round, decision=vote.decision,
                intent_hash=vote.intent_hash, approval_id=vote.approval_id, reason=vote.reason,
                rejection=rejection), now)
        except VoteRefused as refused:
            await emit(tx, service, settings, [ApprovalRefused(
                request_id=vote.request_id, state_id=vote.state_id, approval_round=vote.approval_round,
                approver_id=vote.approver_id, vote_message_id=vote.message_id, code=refused.code,
                reason=refused.reason, correlation_id=request.correlation_id if request else vote.correlation_id,
                causation_id=vote.message_id)])
            return
        assert request is not None
        saved = await tx.save_request(updated, new=False)
        await emit(tx, service, settings, decided(request, saved, vote.message_id))

    async def on_cancel(tx: Tx, item: Inbound, now: datetime) -> None:
        command = item.message
        assert isinstance(command, CancelRequested)
        request = await tx.get_request(command.request_id)
        record = directory.resolve(command.actor.actor_id, await tx.get_principal(command.actor.actor_id))
        is_operator = record is not None and record.active and settings.operator_role in record.roles
        actor = Actor.model_validate(command.actor.model_dump(mode="json"))
        try:
            updated = cancel(request, actor, is_operator, command.reason, now)
        except DomainError as refused:
            await emit(tx, service, settings, [CommandRefused(
                request_id=command.request_id, state_id=command.state_id, command_message_id=command.message_id,
                command_type=command.message_type, code=refused.code, reason=refused.reason,
                correlation_id=command.correlation_id, causation_id=command.message_id)])
            return
        assert request is not None
        saved = await tx.save_request(updated, new=False)
        await emit(tx, service, settings, decided(request, saved, command.message_id))

    async def handle(tx: Tx, items: list[Inbound], now: datetime) -> None:
        await prefetch(tx, items, states=False)
        for item in items:
            await (on_vote if isinstance(item.message, ApprovalSubmitted) else on_cancel)(tx, item, now)

    return handle


async def sweep_expired(runtime: Runtime) -> None:
    """Forever: expire pending requests whose deadline passed. Safe with several instances (CAS)."""
    while True:
        await asyncio.sleep(runtime.settings.sweep_interval_s)
        try:
            await sweep_once(runtime, datetime.now(UTC))
        except Exception as exc:  # the sweeper must outlive a database hiccup; the next round retries
            if not is_transient(exc):
                raise
            log.warning("expiry sweep skipped a round", error=str(exc))


async def sweep_once(runtime: Runtime, now: datetime) -> int:
    """Expire every request due at `now`; returns how many this instance expired."""
    store = runtime.store
    async with store.begin(read_only=True) as tx:  # a poll every second must not take SQLite's write lock
        due = [r.request_id for r in await tx.list_expiring(now, limit=200)]
    expired = 0
    for request_id in due:
        try:
            async with store.begin() as tx:
                request = await tx.get_request(request_id)
                if request is None:
                    continue
                try:
                    updated = expire(request, now)
                except DomainError:
                    continue  # a vote or another sweeper got there first
                saved = await tx.save_request(updated, new=False)
                await emit(tx, runtime.service, runtime.settings, decided(request, saved, None))
                expired += 1
        except ConcurrencyConflict:
            log.info("expiry lost a race; the other writer's result stands", request_id=request_id)
    return expired
