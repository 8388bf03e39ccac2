"""The approval workflow: votes, quorum, veto, step order, expiry and cancel. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.domain import decisions
from services.domain.errors import DomainError
from services.domain.model import Actor, MutationRequest, PendingReason, Requirement, Status
from services.domain.policy_model import ApprovalSpec
from services.domain.transitions import append, transition


class VoteRefused(DomainError):
    """A vote that changes nothing; `code` is one of the approval.* refusal codes."""


@dataclass(frozen=True)
class Principal:
    """An approver as the directory knows them (roles and groups never come from the message)."""

    principal_id: str
    name: str | None = None
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    active: bool = True

    def qualifies(self, requirement: Requirement) -> bool:
        """Whether this principal may vote on the requirement."""
        if requirement.users is not None:
            return self.principal_id in requirement.users
        if requirement.role is not None:
            return requirement.role in self.roles
        return requirement.group is not None and requirement.group in self.groups

    @property
    def actor(self) -> Actor:
        """The principal as a decision actor."""
        return Actor(actor_id=self.principal_id, actor_name=self.name, actor_type="user")


@dataclass(frozen=True)
class CastVote:
    """Command: a principal approves or rejects the request in a round."""

    principal: Principal
    approval_round: int
    decision: Literal["approve", "reject"]
    intent_hash: str | None = None
    approval_id: str | None = None
    reason: str | None = None
    rejection: dict[str, Any] | None = None


def deadline_passed(request: MutationRequest, now: datetime) -> bool:
    """True once the request's or its open step's deadline is at or before `now`."""
    return request.deadline is not None and request.deadline <= now


def open_requirement(request: MutationRequest) -> Requirement | None:
    """The requirement currently collecting votes."""
    return next((r for r in request.requirements if r.status == "open"), None)


def cast_vote(request: MutationRequest | None, vote: CastVote, now: datetime) -> MutationRequest:
    """The request after the vote; raises VoteRefused (with its code) for a vote that changes nothing."""
    target = _check(request, vote, now)
    assert request is not None
    if vote.decision == "reject":
        return _reject(request, target, vote, now)
    return _approve(request, target, vote, now)


def _check(request: MutationRequest | None, vote: CastVote, now: datetime) -> Requirement:
    who = vote.principal.principal_id
    if request is None:
        raise VoteRefused("no such request", "approval.unknown_request")
    awaiting = request.status is Status.pending and request.pending_reason is PendingReason.approval
    # Refused as expired whether or not the sweeper already moved the request to `expired`.
    if request.status is Status.expired or (awaiting and deadline_passed(request, now)):
        raise VoteRefused("the approval deadline has passed", "approval.expired")
    if request.is_terminal:
        raise VoteRefused(f"the request is {request.status}", "approval.request_closed")
    if not awaiting:
        raise VoteRefused(f"the request is {request.status}, not pending approval", "approval.not_pending_approval")
    if vote.approval_round != request.approval_round:
        raise VoteRefused(f"round {vote.approval_round} is not the current round {request.approval_round}",
                          "approval.stale_round")
    if vote.intent_hash is not None and vote.intent_hash != request.intent_hash:
        raise VoteRefused("the vote is for a different change (intent hash)", "approval.intent_mismatch")
    return _target(request, vote, who)


def _target(request: MutationRequest, vote: CastVote, who: str) -> Requirement:
    candidates = [r for r in request.requirements if vote.approval_id in (None, r.approval_id)]
    qualified = [r for r in candidates if vote.principal.qualifies(r)]
    if not qualified:
        raise VoteRefused(f"{who} qualifies for no step of this request", "approval.not_authorized")
    target = next((r for r in qualified if r.status == "open"), None)
    if target is None:
        raise VoteRefused("the step this principal qualifies for is not open", "approval.step_not_open")
    if who == request.requester.actor_id and not _spec(request).allow_self_approval:
        raise VoteRefused("requesters may not approve their own request", "approval.self_approval")
    others = [r for r in request.requirements if r.approval_id != target.approval_id and who in r.voters]
    if others and _spec(request).separation_of_duties:
        raise VoteRefused(f"{who} already acted on step {others[0].step}", "approval.separation_of_duties")
    if who in target.voters:
        raise VoteRefused(f"{who} already voted on step {target.step}", "approval.duplicate")
    return target


def _approve(request: MutationRequest, target: Requirement, vote: CastVote, now: datetime) -> MutationRequest:
    actor = vote.principal.actor
    meta = _meta(request, target)
    granted = target.model_copy(update={"approvals": (*target.approvals, actor.actor_id)})
    log = [decisions.approval("granted", now, vote.reason, actor, **meta)]
    if len(granted.approvals) < granted.quorum:
        return append(request, *log, requirements=_replace(request, granted))
    satisfied = granted.model_copy(update={"status": "satisfied"})
    log.append(decisions.approval("quorum_satisfied", now, None, actor, **meta, approvals=list(granted.approvals)))
    requirements = _open_next(_replace(request, satisfied), _spec(request), now)
    if any(r.status != "satisfied" for r in requirements):
        return append(request, *log, requirements=requirements)
    log.append(decisions.lifecycle("approved", now, "every approval step is satisfied", actor))
    return transition(request, Status.approved, *log, requirements=requirements)


def _reject(request: MutationRequest, target: Requirement, vote: CastVote, now: datetime) -> MutationRequest:
    actor = vote.principal.actor
    rejection = vote.rejection or {"code": "rejected", "category": None, "message": vote.reason}
    meta = {**_meta(request, target), "rejection": rejection}
    voted = target.model_copy(update={"rejections": (*target.rejections, actor.actor_id)})
    log = [decisions.approval("rejected", now, vote.reason or rejection.get("message"), actor, **meta)]
    if len(voted.rejections) < voted.deny_threshold:
        return append(request, *log, requirements=_replace(request, voted))
    vetoed = voted.model_copy(update={"status": "rejected"})
    message = rejection.get("message") or vote.reason or f"rejected by {actor.actor_id}"
    log.append(decisions.lifecycle("rejected", now, message, actor, rejection=rejection))
    return transition(request, Status.rejected, *log, requirements=_replace(request, vetoed))


def expire(request: MutationRequest, now: datetime) -> MutationRequest:
    """Expire a pending(approval) request whose deadline passed (the sweeper's command)."""
    if request.status is not Status.pending or not deadline_passed(request, now):
        raise DomainError("nothing to expire", "not_due")
    step = open_requirement(request)
    log = []
    requirements = request.requirements
    if step is not None:
        log.append(decisions.approval("expired", now, "approval deadline passed", **_meta(request, step)))
        requirements = _replace(request, step.model_copy(update={"status": "expired"}))
    log.append(decisions.lifecycle("expired", now, "approval deadline passed"))
    return transition(request, Status.expired, *log, requirements=requirements)


def cancel(request: MutationRequest | None, actor: Actor, is_operator: bool, reason: str | None,
           now: datetime) -> MutationRequest:
    """Cancel a request that has not executed; only its requester or an operator may."""
    if request is None:
        raise DomainError("no such request", "unknown_request")
    if actor.actor_id != request.requester.actor_id and not is_operator:
        raise DomainError(f"{actor.actor_id} may not cancel a request of {request.requester.actor_id}",
                          "not_authorized")
    if request.is_terminal:
        raise DomainError(f"the request is already {request.status}", "request_closed")
    return transition(request, Status.canceled, decisions.lifecycle("canceled", now, reason, actor))


def _spec(request: MutationRequest) -> ApprovalSpec:
    return ApprovalSpec.model_validate(request.approval_spec or {"steps": [{"users": []}]})


def _meta(request: MutationRequest, r: Requirement) -> dict[str, Any]:
    return {"approval_id": r.approval_id, "step": r.step, "approval_round": request.approval_round,
            "quorum": r.quorum}


def _replace(request: MutationRequest, updated: Requirement) -> tuple[Requirement, ...]:
    return tuple(updated if r.approval_id == updated.approval_id else r for r in request.requirements)


def _open_next(requirements: tuple[Requirement, ...], spec: ApprovalSpec, now: datetime) -> tuple[Requirement, ...]:
    """Open the first waiting step, starting its own clock."""
    nxt = next((r for r in requirements if r.status == "waiting"), None)
    if nxt is None:
        return requirements
    step = spec.steps[nxt.step - 1] if nxt.step <= len(spec.steps) else None
    expires = now + step.expires_in if step is not None and step.expires_in else None
    opened = nxt.model_copy(update={"status": "open", "expires_at": expires})
    return tuple(opened if r.approval_id == nxt.approval_id else r for r in requirements)
