"""Intake: turn a submitted mutation into a request that is approved, rejected or pending approval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.domain import decisions
from services.domain.approvals import open_round
from services.domain.errors import DomainError
from services.domain.hashing import intent_hash, sha256_hex
from services.domain.model import Actor, Intent, MutationRequest, StateDocument, Status, Strategy
from services.domain.mutation_types import MutationRegistry
from services.domain.policies import PolicySet, Verdict
from services.domain.policy_model import PolicyInput
from services.domain.transitions import transition


@dataclass(frozen=True)
class SubmitMutation:
    """Command: a producer asks for a change."""

    request_id: str
    state_id: str
    state_type: str
    mutation_type: str
    payload: dict[str, Any]
    intent: Intent
    requester: Actor
    reason: str | None = None
    expected_version: int | None = None
    resolution_strategy: Strategy | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    correlation_id: str | None = None

    def __post_init__(self) -> None:
        # Wire times are UTC; a naive expires_at would make every comparison with `now` raise.
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            object.__setattr__(self, "expires_at", self.expires_at.replace(tzinfo=UTC))

    def body_hash(self) -> str:
        """Identity of the request body: a resubmission with the same hash is a duplicate."""
        fields = {k: v for k, v in self.__dict__.items() if k != "correlation_id"}
        fields["intent"] = self.intent.model_dump(mode="json")
        fields["requester"] = self.requester.model_dump(mode="json")
        return sha256_hex(fields)


def is_duplicate(existing: MutationRequest, cmd: SubmitMutation) -> bool:
    """True for the same body (answer RequestDuplicate); False means a conflicting reuse of the id."""
    return existing.body_hash == cmd.body_hash()


def policy_input(request: MutationRequest, state: StateDocument) -> PolicyInput:
    """What the policies see for this request against this state."""
    return PolicyInput(
        request_id=request.request_id,
        state_id=request.state_id,
        state_type=request.state_type,
        mutation_type=request.mutation_type,
        payload=request.payload,
        intent=request.intent,
        requester=request.requester,
        state=state,
    )


def submit(
    cmd: SubmitMutation, state: StateDocument, policies: PolicySet, registry: MutationRegistry, now: datetime
) -> MutationRequest:
    """The new request, decided: approved, rejected (with why) or pending(approval)."""
    request = _new_request(cmd, state, policies, now)
    try:
        _check(cmd, state, registry, now)
    except DomainError as exc:
        if exc.code == "expired":
            return transition(request, Status.expired, decisions.lifecycle("expired", now, exc.reason))
        return transition(request, Status.rejected, decisions.rejected(now, exc.code, "validation", exc.reason))
    verdict = policies.evaluate(policy_input(request, state))
    if verdict.effect == "require_approval" and cmd.resolution_strategy is None and cmd.expected_version is None:
        # Approvers approve a specific version: once it moves, they are asked again (DESIGN §4).
        request = request.model_copy(update={"resolution_strategy": Strategy.require_renewed_approval})
    return apply_verdict(request, verdict, now, base_version=state.version)


def apply_verdict(request: MutationRequest, verdict: Verdict, now: datetime, *, base_version: int) -> MutationRequest:
    """Approve, reject or open an approval round, as the composed policy verdict says."""
    actor = decisions.policy_actor(verdict.policy)
    if verdict.effect == "deny":
        rejected = decisions.rejected(now, "policy_denied", "policy", verdict.reason, actor, policy=verdict.policy)
        return transition(request, Status.rejected, rejected)
    if verdict.effect == "require_approval":
        return open_round(request, verdict, now, base_version=base_version)
    return transition(request, Status.approved, decisions.lifecycle("approved", now, verdict.reason, actor))


def _check(cmd: SubmitMutation, state: StateDocument, registry: MutationRegistry, now: datetime) -> None:
    if cmd.expires_at is not None and cmd.expires_at <= now:
        raise DomainError(f"request expired at {cmd.expires_at.isoformat()} before it was decided", "expired")
    if state.version > 0 and cmd.state_type != state.state_type:
        # Policies match on state_type, so a request may not relabel an existing state.
        raise DomainError(f"state {cmd.state_id} is a {state.state_type!r}, not a {cmd.state_type!r}",
                          "state_type_mismatch")
    if cmd.expected_version is not None and cmd.expected_version > state.version:
        raise DomainError(
            f"expected_version {cmd.expected_version} is ahead of the state's version {state.version}",
            "expected_version_ahead",
        )
    mutation_type = registry.get(cmd.mutation_type)
    if mutation_type is None:
        raise DomainError(
            f"unknown mutation type {cmd.mutation_type!r}; known: {', '.join(registry.names())}",
            "unknown_mutation_type",
        )
    mutation_type.validate(state, cmd.payload)


def default_strategy(cmd: SubmitMutation) -> Strategy:
    """DESIGN §4 defaults before policies ran; `submit` switches a request that needs approval
    (and gave no expected_version) to require_renewed_approval."""
    if cmd.resolution_strategy is not None:
        return cmd.resolution_strategy
    if cmd.expected_version is not None:
        return Strategy.reject_stale
    return Strategy.revalidate_on_latest


def _new_request(cmd: SubmitMutation, state: StateDocument, policies: PolicySet, now: datetime) -> MutationRequest:
    # Born pending with only its `submitted` decision; the verdict then moves it on through the
    # transition table like any other writer would.
    request = MutationRequest(
        request_id=cmd.request_id,
        state_id=cmd.state_id,
        state_type=cmd.state_type,
        mutation_type=cmd.mutation_type,
        payload=cmd.payload,
        intent=cmd.intent,
        requester=cmd.requester,
        reason=cmd.reason,
        base_version=cmd.expected_version if cmd.expected_version is not None else state.version,
        expected_version=cmd.expected_version,
        resolution_strategy=default_strategy(cmd),
        status=Status.pending,
        intent_hash=intent_hash(cmd.state_id, cmd.state_type, cmd.mutation_type, cmd.payload),
        body_hash=cmd.body_hash(),
        policy_version=policies.version,
        correlation_id=cmd.correlation_id,
        created_at=now,
        updated_at=now,
        expires_at=cmd.expires_at,
        requested_expires_at=cmd.expires_at,
        metadata=cmd.metadata or {},
        decisions=(decisions.lifecycle("submitted", now, cmd.reason, cmd.requester),),
    )
    return request
