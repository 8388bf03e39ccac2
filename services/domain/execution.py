"""Execution: resolve the request's base version against the current state, then apply it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.domain import decisions
from services.domain.approvals import open_round
from services.domain.diff import overlaps
from services.domain.errors import DomainError
from services.domain.intake import apply_verdict, policy_input
from services.domain.model import Decision, MutationRequest, StateDocument, Status, Strategy
from services.domain.mutation_types import Applied, MutationRegistry
from services.domain.policies import PolicySet
from services.domain.transitions import append, transition


@dataclass(frozen=True)
class Outcome:
    """What executing a request did: the request after it, the new state when it changed."""

    request: MutationRequest
    state: StateDocument | None = None
    applied: Applied | None = None
    failure: DomainError | None = None

    @property
    def executed(self) -> bool:
        """True when the request reached `executed`."""
        return self.request.status is Status.executed


def execute(
    request: MutationRequest,
    state: StateDocument,
    registry: MutationRegistry,
    policies: PolicySet,
    now: datetime,
    changed_paths: Iterable[str] = (),
) -> Outcome:
    """Resolve staleness by the request's strategy, then apply; `changed_paths` = paths changed since base."""
    if state.version == request.base_version:
        request = append(request, decisions.resolution("validated", now, request.base_version, state.version))
        return _apply(request, state, registry, now)
    return _resolve_stale(request, state, registry, policies, now, set(changed_paths))


def _resolve_stale(
    request: MutationRequest, state: StateDocument, registry: MutationRegistry, policies: PolicySet,
    now: datetime, changed: set[str],
) -> Outcome:
    base, current = request.base_version, state.version
    strategy = request.resolution_strategy
    if strategy is Strategy.reject_stale:
        reason = f"state moved from version {base} to {current} since the request was decided"
        return Outcome(transition(
            request, Status.rejected,
            decisions.resolution("rejected_as_stale", now, base, current, reason),
            decisions.rejected(now, "stale", "version_resolution", reason),
        ))
    if strategy is Strategy.rebase_if_disjoint:
        touched = _touched(request, registry)
        if not any(overlaps(a, b) for a in touched for b in changed):
            request = append(request, decisions.resolution("rebased", now, base, current,
                                                           "changes since the base version are disjoint"))
            return _apply(request, state, registry, now)
        return _renew(request, state, policies, now, "changes since the base version overlap this mutation")
    if strategy is Strategy.require_renewed_approval:
        return _renew(request, state, policies, now, "the state moved; approvers approved an older version")
    return _revalidate(request, state, registry, policies, now)


def _revalidate(
    request: MutationRequest, state: StateDocument, registry: MutationRegistry, policies: PolicySet, now: datetime
) -> Outcome:
    base, current = request.base_version, state.version
    noted = append(request, decisions.resolution("revalidation_required", now, base, current))
    verdict = policies.evaluate(policy_input(noted, state))
    if verdict.effect == "allow":
        validated = append(noted, decisions.resolution("validated", now, base, current, "policies still allow"),
                           base_version=current)
        return _apply(validated, state, registry, now)
    return Outcome(apply_verdict(noted, verdict, now, base_version=current))


def _renew(request: MutationRequest, state: StateDocument, policies: PolicySet, now: datetime, why: str) -> Outcome:
    """A new approval round against the current version; without approvers to ask, it is stale."""
    base, current = request.base_version, state.version
    verdict = policies.evaluate(policy_input(request, state))
    if verdict.effect != "require_approval":
        reason = f"{why}; no approval policy applies to renew, so it is rejected as stale"
        return Outcome(transition(
            request, Status.rejected,
            decisions.resolution("rejected_as_stale", now, base, current, reason),
            decisions.rejected(now, "stale", "version_resolution", reason),
        ))
    noted = append(request, decisions.resolution("renewed_approval_required", now, base, current, why))
    return Outcome(open_round(noted, verdict, now, base_version=current))


def _apply(request: MutationRequest, state: StateDocument, registry: MutationRegistry, now: datetime) -> Outcome:
    mutation_type = registry.get(request.mutation_type)
    try:
        if mutation_type is None:
            raise DomainError(f"mutation type {request.mutation_type!r} is no longer registered",
                              "unknown_mutation_type")
        mutation_type.validate(state, request.payload)
        applied = mutation_type.apply(state, request.payload)
    except DomainError as exc:
        failed = transition(request, Status.failed, _failed(now, exc, state.version))
        return Outcome(failed, failure=exc)
    changed = bool(applied.changes)
    # The version moves only on an effective change; a no-op execution keeps it.
    new_state = state.model_copy(update={"version": state.version + 1, "data": applied.data}) if changed else None
    resulting = new_state.version if new_state else state.version
    executed = transition(
        request, Status.executed,
        decisions.lifecycle("executed", now, None, previous_version=state.version, resulting_version=resulting,
                            change_count=len(applied.changes)),
        resulting_version=resulting,
    )
    return Outcome(executed, new_state, applied)


def _failed(now: datetime, exc: DomainError, version: int) -> Decision:
    return decisions.lifecycle("failed", now, exc.reason, failure_code=exc.code, version=version)


def _touched(request: MutationRequest, registry: MutationRegistry) -> set[str]:
    mutation_type = registry.get(request.mutation_type)
    return mutation_type.touched_paths(request.payload) if mutation_type else {""}
