"""The governed-mutation model: state documents, requests, decisions. Immutable values."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Value(BaseModel):
    """Base of every domain value: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Status(StrEnum):
    """Request status."""

    pending = "pending"
    approved = "approved"
    executed = "executed"
    rejected = "rejected"
    failed = "failed"
    canceled = "canceled"
    expired = "expired"
    superseded = "superseded"


TERMINAL = frozenset(s for s in Status if s not in (Status.pending, Status.approved))


class PendingReason(StrEnum):
    """Why a pending request waits."""

    approval = "approval"
    external_check = "external_check"
    revalidation = "revalidation"
    schedule = "schedule"


class Strategy(StrEnum):
    """Stale-request resolution strategy."""

    reject_stale = "reject_stale"
    require_renewed_approval = "require_renewed_approval"
    revalidate_on_latest = "revalidate_on_latest"
    rebase_if_disjoint = "rebase_if_disjoint"


RISK_ORDER = ["low", "medium", "high", "critical"]
SCOPE_ORDER = ["single", "module", "system", "global"]


class Actor(Value):
    """Who acts."""

    actor_id: str
    actor_name: str | None = None
    actor_type: str = "user"


SYSTEM = Actor(actor_id="mutator", actor_name="Mutator", actor_type="system")


class BlastRadius(Value):
    """How far a change reaches."""

    scope: str = "single"
    estimated_affected_count: int = 1
    description: str | None = None


class Intent(Value):
    """Classification of a change."""

    operation_name: str | None = None
    category: str | None = None
    description: str | None = None
    risk_level: str = "low"
    reversible: bool = True
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = Field(default_factory=dict)


class Decision(Value):
    """One entry of the append-only decision log."""

    category: str
    code: str
    reason: str | None = None
    actor: Actor = SYSTEM
    at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)


class Requirement(Value):
    """One approval requirement (a step targeting users, a role or a group)."""

    approval_id: str
    step: int
    users: tuple[str, ...] | None = None
    role: str | None = None
    group: str | None = None
    quorum: int = 1
    deny_threshold: int = 1
    approvals: tuple[str, ...] = ()
    rejections: tuple[str, ...] = ()
    status: str = "open"
    expires_at: datetime | None = None

    @property
    def voters(self) -> tuple[str, ...]:
        """Everyone who voted on this requirement, either way."""
        return self.approvals + self.rejections


class StateDocument(Value):
    """A named, versioned JSON document. Version 0 means it does not exist yet."""

    state_id: str
    state_type: str = "document"
    version: int = 0
    data: dict[str, Any] = Field(default_factory=dict)


class Change(Value):
    """One effective change to a document."""

    op: str
    path: str
    old: Any = None
    new: Any = None


class MutationRequest(Value):
    """The aggregate: a requested change, its status and its decision log."""

    request_id: str
    state_id: str
    state_type: str
    mutation_type: str
    payload: dict[str, Any]
    intent: Intent
    requester: Actor
    reason: str | None = None
    base_version: int
    expected_version: int | None = None
    resolution_strategy: Strategy
    status: Status
    pending_reason: PendingReason | None = None
    approval_round: int = 0
    requirements: tuple[Requirement, ...] = ()
    approval_spec: dict[str, Any] | None = None
    decisions: tuple[Decision, ...] = ()
    intent_hash: str
    body_hash: str
    policy_version: str | None = None
    revision: int = 0
    resulting_version: int | None = None
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    requested_expires_at: datetime | None = None  # the producer's own deadline, before any policy capped it
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def deadline(self) -> datetime | None:
        """The earliest of the request's deadline and its open approval step's deadline."""
        open_steps = [r.expires_at for r in self.requirements if r.status == "open" and r.expires_at]
        deadlines = [d for d in (self.expires_at, *open_steps) if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def is_terminal(self) -> bool:
        """True once nothing can change the request any more."""
        return self.status in TERMINAL
