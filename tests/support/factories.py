"""Builders for in-memory domain tests: a fixed clock, commands, states, policy sets, requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from services.domain import decisions
from services.domain.intake import SubmitMutation, submit
from services.domain.model import Actor, Intent, MutationRequest, StateDocument, Status
from services.domain.mutation_types import MutationRegistry
from services.domain.policies import CodePolicy, PolicySet, policy_set_from_mapping
from services.domain.transitions import transition
from services.domain.voting import CastVote, Principal
from services.mutations.registry import load_registry

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
REQUESTER = Actor(actor_id="bob", actor_name="Bob", actor_type="user")

# The example from the issue / README "Policies": three approval steps for risky prod flags.
REVIEW_YAML = """
policies:
  - name: prod-flags-need-review
    priority: 100
    match: {state_ids: ["flags/*"], min_risk: high, tags_any: [prod]}
    effect: require_approval
    approval:
      expires_in: 1h
      steps:
        - {users: [alice]}
        - {group: security, quorum: 2, expires_in: 30m}
        - {role: finance-approver}
default: allow
"""

ALLOW_ALL: dict[str, Any] = {"policies": [], "default": "allow"}
DENY_ALL: dict[str, Any] = {"policies": [], "default": "deny"}


def registry() -> MutationRegistry:
    """Built-in mutation types (and any installed plugins)."""
    return load_registry()


def policies(doc: dict[str, Any] | str = ALLOW_ALL, code: tuple[CodePolicy, ...] = ()) -> PolicySet:
    """A policy set from a mapping or YAML text."""
    mapping = yaml.safe_load(doc) if isinstance(doc, str) else doc
    return policy_set_from_mapping(mapping, code)


def review_policies() -> PolicySet:
    """The issue's require-approval policy set."""
    return policies(REVIEW_YAML)


def state(state_id: str = "docs/readme", version: int = 0, data: dict[str, Any] | None = None,
          state_type: str = "document") -> StateDocument:
    """A state document (version 0 = does not exist yet)."""
    return StateDocument(state_id=state_id, state_type=state_type, version=version, data=data or {})


def command(**overrides: Any) -> SubmitMutation:
    """A json.merge request on docs/readme by bob; override any field."""
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "state_id": "docs/readme",
        "state_type": "document",
        "mutation_type": "json.merge",
        "payload": {"merge": {"title": "Hello"}},
        "intent": Intent(operation_name="retitle", category="docs"),
        "requester": REQUESTER,
        "reason": "because",
    }
    fields.update(overrides)
    return SubmitMutation(**fields)


def risky_flag_command(**overrides: Any) -> SubmitMutation:
    """A flags.set request that the issue's review policy matches (flags/*, high risk, tag prod)."""
    fields: dict[str, Any] = {
        "state_id": "flags/checkout",
        "state_type": "feature-flags",
        "mutation_type": "flags.set",
        "payload": {"flag": "new-checkout", "enabled": True, "rollout": 50},
        "intent": Intent(risk_level="high", tags=("prod",)),
    }
    fields.update(overrides)
    return command(**fields)


def submitted(cmd: SubmitMutation | None = None, current: StateDocument | None = None,
              policy_set: PolicySet | None = None, now: datetime = NOW) -> MutationRequest:
    """The request as intake decides it."""
    cmd = cmd or command()
    current = current or state(cmd.state_id, state_type=cmd.state_type)
    return submit(cmd, current, policy_set or policies(), registry(), now)


def approved(cmd: SubmitMutation | None = None, current: StateDocument | None = None) -> MutationRequest:
    """An auto-approved request (allow-all policies)."""
    request = submitted(cmd, current)
    assert request.status is Status.approved, request.decisions
    return request


def human_approved(cmd: SubmitMutation | None = None, current: StateDocument | None = None,
                   votes: tuple[str, ...] = ("alice",)) -> MutationRequest:
    """A request that went through round 1 of the review policy and was approved (votes on step 1)."""
    request = submitted(cmd or risky_flag_command(), current, review_policies())
    assert request.status is Status.pending, request.decisions
    voted = tuple(r.model_copy(update={"approvals": votes, "status": "satisfied"}) for r in request.requirements)
    return transition(
        request, Status.approved,
        decisions.approval("quorum_satisfied", NOW), decisions.lifecycle("approved", NOW),
        requirements=voted,
    )


def codes(request: MutationRequest) -> list[str]:
    """The decision codes of a request's log, in order."""
    return [d.code for d in request.decisions]


def approval_policies(approval: dict[str, Any]) -> PolicySet:
    """Every request requires the given approval block (steps, expires_in, flags)."""
    rule = {"name": "needs-approval", "effect": "require_approval", "approval": approval}
    return policies({"policies": [rule], "default": "allow"})


def pending_approval(approval: dict[str, Any] | None = None, cmd: SubmitMutation | None = None,
                     now: datetime = NOW) -> MutationRequest:
    """A request in pending(approval), round 1: the issue's review policy unless `approval` is given."""
    policy_set = review_policies() if approval is None else approval_policies(approval)
    request = submitted(cmd or risky_flag_command(), policy_set=policy_set, now=now)
    assert request.status is Status.pending and request.approval_round == 1, request.decisions
    return request


def principal(principal_id: str, roles: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> Principal:
    """An approver as the directory would resolve them."""
    return Principal(principal_id, principal_id.title(), frozenset(roles), frozenset(groups))


def vote(request: MutationRequest, who: Principal, decision: str = "approve", **overrides: Any) -> CastVote:
    """A well-formed vote on the request's current round and intent hash; override any field."""
    fields: dict[str, Any] = {"principal": who, "approval_round": request.approval_round,
                              "decision": decision, "intent_hash": request.intent_hash}
    fields.update(overrides)
    return CastVote(**fields)
