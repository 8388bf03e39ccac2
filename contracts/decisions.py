"""mutation.decisions.v1: every decision, refused votes and duplicate submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from contracts import topics
from contracts.common import Actor, Decision, Intent, Requirement
from contracts.envelope import Envelope, Id


class RequestDecided(Envelope):
    """One decision recorded on a request, with the request as that transaction committed it."""

    topic: ClassVar[str] = topics.DECISIONS
    message_type: Literal["RequestDecided"] = "RequestDecided"
    request_id: Id
    state_id: Id
    sequence: int = Field(description="Index of the decision in the request's log; order by this")
    decision: Decision
    status: str = Field(description="Request status after the decision")
    pending_reason: str | None = None
    revision: int = Field(description="Request revision after the decision")
    approval_round: int = 0
    intent_hash: str
    expires_at: datetime | None = None
    # While pending(approval): what an approver needs.
    mutation_type: str | None = None
    payload: dict[str, Any] | None = None
    intent: Intent | None = None
    requester: Actor | None = None
    base_version: int | None = None
    requirements: list[Requirement] | None = None


class ApprovalRefused(Envelope):
    """A vote that changed nothing, and why. Not a decision."""

    topic: ClassVar[str] = topics.DECISIONS
    message_type: Literal["ApprovalRefused"] = "ApprovalRefused"
    request_id: Id
    state_id: Id
    approval_round: int | None = None
    approver_id: str | None = None
    vote_message_id: str
    code: str = Field(description="approval.* refusal code")
    reason: str


class RequestDuplicate(Envelope):
    """A request_id was submitted again with the same body; nothing new happened."""

    topic: ClassVar[str] = topics.DECISIONS
    message_type: Literal["RequestDuplicate"] = "RequestDuplicate"
    request_id: Id
    state_id: Id
    status: str
    revision: int


class CommandRefused(Envelope):
    """An operator command that changed nothing, and why. Not a decision."""

    topic: ClassVar[str] = topics.DECISIONS
    message_type: Literal["CommandRefused"] = "CommandRefused"
    request_id: Id
    state_id: Id
    command_message_id: str
    command_type: str
    code: str = Field(description="unknown_request | not_authorized | request_closed")
    reason: str
