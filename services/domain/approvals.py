"""Opening an approval round: requirements from a policy's approval spec."""

from __future__ import annotations

from datetime import datetime

from pydantic_core import to_jsonable_python

from services.domain import decisions
from services.domain.model import MutationRequest, PendingReason, Requirement, Status
from services.domain.policies import Verdict
from services.domain.policy_model import ApprovalSpec
from services.domain.transitions import transition


def requirements_for(spec: ApprovalSpec, round_: int, now: datetime) -> tuple[Requirement, ...]:
    """One requirement per step; the first step is open now, later ones wait for their turn."""
    return tuple(
        Requirement(
            approval_id=f"r{round_}-s{n}",
            step=n,
            users=step.users,
            role=step.role,
            group=step.group,
            quorum=step.quorum,
            deny_threshold=step.deny_threshold,
            status="open" if n == 1 else "waiting",
            expires_at=now + step.expires_in if n == 1 and step.expires_in else None,
        )
        for n, step in enumerate(spec.steps, start=1)
    )


def approval_deadline(request_expiry: datetime | None, spec: ApprovalSpec, now: datetime) -> datetime | None:
    """The earlier of the request's own deadline and the policy's expires_in."""
    candidates = [d for d in (request_expiry, now + spec.expires_in if spec.expires_in else None) if d]
    return min(candidates) if candidates else None


def open_round(request: MutationRequest, verdict: Verdict, now: datetime, *, base_version: int) -> MutationRequest:
    """Move to pending(approval) in a new round with fresh requirements and no votes carried over."""
    assert verdict.approval is not None
    round_ = request.approval_round + 1
    requirements = requirements_for(verdict.approval, round_, now)
    actor = decisions.policy_actor(verdict.policy)
    return transition(
        request,
        Status.pending,
        decisions.lifecycle("pending", now, verdict.reason, actor, pending_reason="approval"),
        decisions.approval("requested", now, verdict.reason, actor, approval_round=round_,
                           requirement_count=len(requirements)),
        pending_reason=PendingReason.approval,
        approval_round=round_,
        requirements=requirements,
        base_version=base_version,
        expires_at=approval_deadline(request.requested_expires_at, verdict.approval, now),
        # Durations as seconds: pydantic's JSON form (ISO 8601, "PT30M") is not one ApprovalSpec reads back.
        approval_spec=to_jsonable_python(verdict.approval.model_dump(), timedelta_mode="float"),
    )
