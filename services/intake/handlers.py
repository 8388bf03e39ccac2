"""Intake: validate, dedupe on request_id, evaluate policies, record the request."""

from __future__ import annotations

from datetime import datetime

from contracts.requests import MutationRequested
from services.common.consumer import Handle, emit, prefetch
from services.common.inbound import Inbound, rejected
from services.common.outbound import decided, duplicate
from services.common.service import Runtime
from services.domain.intake import SubmitMutation, is_duplicate, submit
from services.domain.model import Actor, Intent, StateDocument, Strategy
from services.domain.mutation_types import MutationRegistry
from services.domain.policies import PolicySet
from services.store.uow import Tx


def to_command(msg: MutationRequested) -> SubmitMutation:
    """Wire message -> domain command."""
    return SubmitMutation(
        request_id=msg.request_id,
        state_id=msg.state_id,
        state_type=msg.state_type,
        mutation_type=msg.mutation_type,
        payload=msg.payload,
        intent=Intent.model_validate(msg.intent.model_dump(mode="json")),
        requester=Actor.model_validate(msg.requester.model_dump(mode="json")),
        reason=msg.reason,
        expected_version=msg.expected_version,
        resolution_strategy=Strategy(msg.resolution_strategy) if msg.resolution_strategy else None,
        expires_at=msg.expires_at,
        metadata=msg.metadata,
        correlation_id=msg.correlation_id or msg.request_id,
    )


def make_handle(runtime: Runtime, policies: PolicySet, registry: MutationRegistry) -> Handle:
    """The intake batch handler: parse -> load -> decide -> save (+ outbox) for each request."""
    settings, service = runtime.settings, runtime.service

    async def handle(tx: Tx, items: list[Inbound], now: datetime) -> None:
        await prefetch(tx, items)
        for item in items:
            msg = item.message
            assert isinstance(msg, MutationRequested)
            cmd = to_command(msg)
            existing = await tx.get_request(msg.request_id)
            if existing is not None:
                answer = duplicate(existing, msg.message_id) if is_duplicate(existing, cmd) else rejected(
                    item, code="request_id_conflict",
                    reason=f"request_id {msg.request_id!r} was already used for a different request")
                await emit(tx, service, settings, [answer])
                continue
            state = await tx.get_state(msg.state_id) or StateDocument(state_id=msg.state_id,
                                                                      state_type=msg.state_type)
            request = await tx.save_request(submit(cmd, state, policies, registry, now), new=True)
            await emit(tx, service, settings, decided(None, request, msg.message_id))

    return handle
