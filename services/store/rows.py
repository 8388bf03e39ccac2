"""Mapping between domain values and table rows."""

from __future__ import annotations

from typing import Any

from services.domain.model import Decision, MutationRequest, StateDocument


def request_row(request: MutationRequest) -> dict[str, Any]:
    """The mutation_request row of a request (scalar columns for queries, the aggregate in `body`)."""
    return {
        "request_id": request.request_id,
        "state_id": request.state_id,
        "status": request.status.value,
        "pending_reason": None if request.pending_reason is None else request.pending_reason.value,
        "revision": request.revision,
        # The sweeper's index: the earliest of the request's and its open step's deadlines.
        "expires_at": request.deadline,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "body": request.model_dump(mode="json"),
    }


def request_from_row(body: dict[str, Any], revision: int) -> MutationRequest:
    """The request stored in a row; the revision column is the compare-and-set authority."""
    return MutationRequest.model_validate({**body, "revision": revision})


def state_from_row(row: Any) -> StateDocument:
    """The state document stored in a row."""
    return StateDocument(state_id=row.state_id, state_type=row.state_type, version=row.version, data=row.data)


def decision_row(request_id: str, sequence: int, decision: Decision) -> dict[str, Any]:
    """The request_decision row of one decision of a request's log."""
    return {
        "request_id": request_id, "sequence": sequence, "category": decision.category, "code": decision.code,
        "reason": decision.reason, "actor_id": decision.actor.actor_id, "at": decision.at,
        "metadata": decision.model_dump(mode="json")["metadata"],
    }
