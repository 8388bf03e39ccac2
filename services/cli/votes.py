"""Approver-side CLI: keys, signed approve/reject votes, and what a principal can act on now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.approvals import ApprovalSubmitted, Rejection
from services.cli.inspect import read
from services.common.directory import load_directory
from services.common.settings import Settings
from services.common.signing import sign
from services.domain.model import MutationRequest, PendingReason, Status
from services.domain.voting import open_requirement


async def load_requests(settings: Settings, request_id: str | None = None) -> list[MutationRequest]:
    """One request by id, or every pending one."""
    if request_id is not None:
        found = await read(settings, lambda tx: tx.get_request(request_id))
        return [found] if found else []
    return await read(settings, lambda tx: tx.list_requests(status=Status.pending.value, limit=1000))


def signed_vote(request: MutationRequest, approver: str, private_key_b64: str, decision: str, *,
                reason: str | None = None, rejection: Rejection | None = None, key_id: str | None = None,
                approval_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The vote as the JSON object to publish, with its signature over everything else."""
    vote = ApprovalSubmitted(
        request_id=request.request_id, state_id=request.state_id, approval_round=request.approval_round,
        intent_hash=request.intent_hash, approval_id=approval_id, decision=decision, approver_id=approver,
        key_id=key_id, reason=reason, rejection=rejection, signed_at=now or datetime.now(UTC),
        correlation_id=request.correlation_id,
    ).wire()
    vote.pop("signature", None)
    return {**vote, "signature": sign(vote, private_key_b64)}


async def publish_raw(settings: Settings, topic: str, key: str, doc: dict[str, Any]) -> None:
    """Publish a JSON object exactly as given (a signed vote must not be re-serialised differently)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), json.dumps(doc).encode(), key=key.encode())
    finally:
        await producer.stop()


async def vote(settings: Settings, request_id: str, approver: str, key_file: Path, decision: str,
               **options: Any) -> str:
    """Sign and publish a vote on the request's current round; returns the vote's message_id."""
    found = await load_requests(settings, request_id)
    if not found:
        raise LookupError(f"no request {request_id}")
    doc = signed_vote(found[0], approver, key_file.read_text().strip(), decision, **options)
    await publish_raw(settings, topics.APPROVALS, found[0].state_id, doc)
    return str(doc["message_id"])


async def pending_for(settings: Settings, principal_id: str) -> list[tuple[MutationRequest, str]]:
    """Pending(approval) requests whose open step this principal qualifies for and has not voted on."""
    record = load_directory(settings).resolve(principal_id, None)
    if record is None:
        raise LookupError(f"{principal_id} is not in the approver directory")
    principal = record.principal()
    actionable = []
    for request in await load_requests(settings):
        step = open_requirement(request)
        if (request.pending_reason is PendingReason.approval and step is not None and principal.qualifies(step)
                and principal_id not in step.voters):
            target = ", ".join(step.users) if step.users else (step.role or step.group)
            actionable.append((request, f"step {step.step} ({target}) {len(step.approvals)}/{step.quorum}"))
    return actionable
