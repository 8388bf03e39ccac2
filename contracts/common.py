"""Value objects shared by several messages: actor, intent, decision, requirement."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import Id


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ActorType(StrEnum):
    """Who acts."""

    user = "user"
    service = "service"
    system = "system"
    scheduler = "scheduler"
    policy = "policy"
    administrator = "administrator"


class RiskLevel(StrEnum):
    """Ordered risk: low < medium < high < critical."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Scope(StrEnum):
    """Ordered blast-radius scope: single < module < system < global."""

    single = "single"
    module = "module"
    system = "system"
    global_ = "global"


class Actor(_Part):
    """A person or system acting on a request."""

    actor_id: Id = Field(description="Stable id of the actor")
    actor_name: str | None = Field(None, description="Display name")
    actor_type: ActorType = Field(ActorType.user, description="Kind of actor")


class BlastRadius(_Part):
    """How far a change reaches."""

    scope: Scope = Field(Scope.single, description="single < module < system < global")
    estimated_affected_count: int = Field(1, ge=0, description="Estimated affected entities")
    description: str | None = None


class Intent(_Part):
    """Classification of a change, used by policies."""

    operation_name: str | None = Field(None, description="What the change does, e.g. enable-flag")
    category: str | None = Field(None, description="Category, e.g. feature-flags")
    description: str | None = None
    risk_level: RiskLevel = Field(RiskLevel.low, description="low < medium < high < critical")
    reversible: bool = Field(True, description="Whether the change can be undone")
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    tags: list[str] = Field(default_factory=list, description="Free tags matched by policies")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free metadata matched by policies")


class Decision(_Part):
    """One entry of a request's decision log."""

    category: str = Field(description="lifecycle | approval | version_resolution")
    code: str = Field(description="e.g. submitted, approved, rejected_as_stale")
    reason: str | None = Field(None, description="Why, in words")
    actor: Actor = Field(description="Who decided")
    at: datetime = Field(description="When (UTC)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Structured details (e.g. rejection)")


class Requirement(_Part):
    """One approval requirement of a pending request."""

    approval_id: str = Field(description="Id of this requirement")
    step: int = Field(description="Step number, 1-based; steps are satisfied in order")
    users: list[str] | None = Field(None, description="Principals that qualify, by id")
    role: str | None = Field(None, description="Role whose members qualify")
    group: str | None = Field(None, description="Group whose members qualify")
    quorum: int = Field(1, ge=1, description="Approvals needed")
    deny_threshold: int = Field(1, ge=1, description="Rejections that reject the request")
    approvals: list[str] = Field(default_factory=list, description="Principals that approved so far")
    rejections: list[str] = Field(default_factory=list, description="Principals that rejected so far")
    status: str = Field("open", description="open | waiting | satisfied | rejected | expired")
    expires_at: datetime | None = None
