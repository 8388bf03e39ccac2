"""The one transition table. Every writer (intake, approval, execution, sweeps) goes through `transition`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.domain.errors import InvalidTransition
from services.domain.model import TERMINAL, Decision, MutationRequest, PendingReason, Status

# from -> allowed targets. Pending -> pending is a change of reason or a new approval round;
# approved -> pending is renewed approval or revalidation after the state moved.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.pending: frozenset(
        {Status.pending, Status.approved, Status.rejected, Status.canceled, Status.expired, Status.superseded}
    ),
    Status.approved: frozenset(
        {Status.pending, Status.executed, Status.rejected, Status.failed, Status.canceled, Status.superseded}
    ),
    **{terminal: frozenset() for terminal in TERMINAL},
}

# The lifecycle decision code that records arriving at each status.
LIFECYCLE_CODE: dict[Status, str] = {s: s.value for s in Status}


def can_transition(current: Status, target: Status) -> bool:
    """Whether the table allows current -> target."""
    return target in TRANSITIONS[current]


def append(request: MutationRequest, *decisions: Decision, **changes: Any) -> MutationRequest:
    """Append decisions (and field changes) without changing status."""
    if request.is_terminal:
        raise InvalidTransition(f"request {request.request_id} is {request.status}; it is closed")
    return _with(request, decisions, changes)


def transition(
    request: MutationRequest,
    target: Status,
    *decisions: Decision,
    pending_reason: PendingReason | None = None,
    **changes: Any,
) -> MutationRequest:
    """Move to `target` if the table allows it, appending the decisions that explain the move."""
    if not can_transition(request.status, target):
        raise InvalidTransition(f"request {request.request_id}: {request.status} -> {target} is not allowed")
    if (target is Status.pending) != (pending_reason is not None):
        raise InvalidTransition("a pending request needs a pending reason, and only a pending one")
    return _with(request, decisions, {"status": target, "pending_reason": pending_reason, **changes})


def _with(request: MutationRequest, decisions: tuple[Decision, ...], changes: dict[str, Any]) -> MutationRequest:
    at: datetime = decisions[-1].at if decisions else request.updated_at
    return request.model_copy(update={"decisions": request.decisions + decisions, "updated_at": at, **changes})
