"""Policy rules and decisions: what a declarative rule matches and what it decides."""

from __future__ import annotations

import fnmatch
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.domain.durations import parse_duration
from services.domain.model import RISK_ORDER, SCOPE_ORDER, Actor, Intent, StateDocument

Effect = Literal["allow", "deny", "require_approval"]


def optional_duration(value: object) -> timedelta | None:
    """None stays None; text like 30m becomes a timedelta."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError("expires_in must be a duration such as 30m")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepSpec(_Spec):
    """One approval step: who qualifies, how many must approve, how long it stays open."""

    users: tuple[str, ...] | None = None
    role: str | None = None
    group: str | None = None
    quorum: int = Field(1, ge=1)
    expires_in: timedelta | None = None
    deny_threshold: int = Field(1, ge=1, description="Rejections that reject the request")

    @field_validator("expires_in", mode="before")
    @classmethod
    def _duration(cls, v: object) -> timedelta | None:
        return optional_duration(v)

    @model_validator(mode="after")
    def _one_target(self) -> StepSpec:
        if sum(x is not None for x in (self.users, self.role, self.group)) != 1:
            raise ValueError("an approval step targets exactly one of users, role or group")
        return self


class ApprovalSpec(_Spec):
    """What a require_approval rule asks for."""

    steps: tuple[StepSpec, ...] = Field(min_length=1)
    expires_in: timedelta | None = None
    allow_self_approval: bool = False
    separation_of_duties: bool = False

    @field_validator("expires_in", mode="before")
    @classmethod
    def _duration(cls, v: object) -> timedelta | None:
        return optional_duration(v)


class Match(_Spec):
    """Conditions of a rule; all given conditions must hold (lists match any member)."""

    mutation_types: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    state_types: tuple[str, ...] | None = None
    state_ids: tuple[str, ...] | None = Field(None, description="glob patterns, e.g. flags/*")
    min_risk: str | None = None
    min_blast_radius: str | None = None
    tags_any: tuple[str, ...] | None = None
    tags_all: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = Field(None, description="intent.metadata must contain these pairs")
    actor_types: tuple[str, ...] | None = None

    @field_validator("min_risk")
    @classmethod
    def _risk(cls, v: str | None) -> str | None:
        if v is not None and v not in RISK_ORDER:
            raise ValueError(f"min_risk must be one of {RISK_ORDER}")
        return v

    @field_validator("min_blast_radius")
    @classmethod
    def _scope(cls, v: str | None) -> str | None:
        if v is not None and v not in SCOPE_ORDER:
            raise ValueError(f"min_blast_radius must be one of {SCOPE_ORDER}")
        return v


class PolicyInput(_Spec):
    """What a policy sees: the requested change and the state it would apply to."""

    request_id: str
    state_id: str
    state_type: str
    mutation_type: str
    payload: dict[str, Any]
    intent: Intent
    requester: Actor
    state: StateDocument


class PolicyDecision(_Spec):
    """One policy's verdict."""

    effect: Effect
    policy: str
    reason: str | None = None
    severity: str = "error"
    approval: ApprovalSpec | None = None


def matches(match: Match, given: PolicyInput) -> bool:
    """Whether every condition of `match` holds for `given`."""
    intent = given.intent
    checks = [
        match.mutation_types is None or given.mutation_type in match.mutation_types,
        match.categories is None or intent.category in match.categories,
        match.state_types is None or given.state_type in match.state_types,
        match.state_ids is None or any(fnmatch.fnmatchcase(given.state_id, p) for p in match.state_ids),
        match.min_risk is None or _rank(RISK_ORDER, intent.risk_level) >= RISK_ORDER.index(match.min_risk),
        match.min_blast_radius is None
        or _rank(SCOPE_ORDER, intent.blast_radius.scope) >= SCOPE_ORDER.index(match.min_blast_radius),
        match.tags_any is None or bool(set(match.tags_any) & set(intent.tags)),
        match.tags_all is None or set(match.tags_all) <= set(intent.tags),
        match.metadata is None or all(intent.metadata.get(k) == v for k, v in match.metadata.items()),
        match.actor_types is None or given.requester.actor_type in match.actor_types,
    ]
    return all(checks)


def _rank(order: list[str], value: str) -> int:
    return order.index(value) if value in order else -1
