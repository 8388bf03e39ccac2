"""Domain results -> wire messages. The only place the domain model meets the contracts."""

from __future__ import annotations

import json
from datetime import datetime

from contracts.common import Actor as WireActor
from contracts.common import Decision as WireDecision
from contracts.common import Intent as WireIntent
from contracts.common import Requirement as WireRequirement
from contracts.decisions import RequestDecided, RequestDuplicate
from contracts.envelope import Envelope
from contracts.executions import Change as WireChange
from contracts.executions import ExecuteApproved, MutationExecuted, MutationFailed
from services.domain.execution import Outcome
from services.domain.model import MutationRequest, PendingReason, Status


def decided(before: MutationRequest | None, after: MutationRequest, causation_id: str | None) -> list[Envelope]:
    """One RequestDecided per new decision, plus ExecuteApproved when this transaction approved it."""
    start = len(before.decisions) if before else 0
    messages: list[Envelope] = [
        _request_decided(after, sequence, causation_id) for sequence in range(start, len(after.decisions))
    ]
    if after.status is Status.approved and (before is None or before.status is not Status.approved):
        messages.append(ExecuteApproved(request_id=after.request_id, state_id=after.state_id,
                                        revision=after.revision, **_causality(after, causation_id)))
    return messages


def duplicate(existing: MutationRequest, causation_id: str | None) -> RequestDuplicate:
    """The answer to a resubmitted request with the same body."""
    return RequestDuplicate(request_id=existing.request_id, state_id=existing.state_id,
                            status=existing.status.value, revision=existing.revision,
                            **_causality(existing, causation_id))


def executed(outcome: Outcome, previous_version: int, causation_id: str | None, now: datetime,
             document_limit: int) -> list[Envelope]:
    """MutationExecuted or MutationFailed for an execution that reached a terminal outcome."""
    request = outcome.request
    if outcome.failure is not None:
        return [MutationFailed(request_id=request.request_id, state_id=request.state_id,
                               code=outcome.failure.code, reason=outcome.failure.reason,
                               version=previous_version, **_causality(request, causation_id))]
    if not outcome.executed or outcome.applied is None:
        return []
    data = outcome.applied.data  # the resulting document, also when a no-op left the version alone
    document = data if len(json.dumps(data)) <= document_limit else None
    return [MutationExecuted(
        request_id=request.request_id, state_id=request.state_id, previous_version=previous_version,
        resulting_version=request.resulting_version or previous_version,
        changes=[WireChange(**c.model_dump()) for c in outcome.applied.changes],
        document=document, executed_at=now, **_causality(request, causation_id),
    )]


def _request_decided(request: MutationRequest, sequence: int, causation_id: str | None) -> RequestDecided:
    decision = request.decisions[sequence]
    awaiting = request.status is Status.pending and request.pending_reason is PendingReason.approval
    extra = {}
    if awaiting:
        extra = {
            "mutation_type": request.mutation_type,
            "payload": request.payload,
            "intent": WireIntent.model_validate(request.intent, from_attributes=True),
            "requester": WireActor.model_validate(request.requester, from_attributes=True),
            "base_version": request.base_version,
            "requirements": [WireRequirement.model_validate(r, from_attributes=True) for r in request.requirements],
        }
    return RequestDecided(
        request_id=request.request_id, state_id=request.state_id, sequence=sequence,
        decision=WireDecision.model_validate(decision, from_attributes=True),
        status=request.status.value,
        pending_reason=request.pending_reason.value if request.pending_reason else None,
        revision=request.revision, approval_round=request.approval_round, intent_hash=request.intent_hash,
        expires_at=request.expires_at, **extra, **_causality(request, causation_id),
    )


def _causality(request: MutationRequest, causation_id: str | None) -> dict[str, str | None]:
    return {"correlation_id": request.correlation_id or request.request_id, "causation_id": causation_id}
