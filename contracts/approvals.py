"""mutation.approvals.v1: signed votes from external approvers."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import topics
from contracts.envelope import Envelope, Id


class Rejection(BaseModel):
    """A structured reason for a rejection."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    code: str = Field(description="Machine-readable reason code")
    category: str | None = Field(None, description="Reason category, e.g. risk, compliance")
    message: str | None = Field(None, description="Reason in words")


class ApprovalSubmitted(Envelope):
    """An approver approves or rejects a pending request (Ed25519-signed)."""

    topic: ClassVar[str] = topics.APPROVALS
    message_type: Literal["ApprovalSubmitted"] = "ApprovalSubmitted"
    request_id: Id
    state_id: Id = Field(description="Kafka key")
    approval_round: int = Field(ge=1, description="The approval round voted on")
    intent_hash: str | None = Field(None, description="sha256 of the change; checked when present")
    approval_id: str | None = Field(None, description="Requirement voted on; the open one when absent")
    decision: Literal["approve", "reject"]
    approver_id: Id
    key_id: str | None = Field(None, description="Which of the approver's keys signed")
    reason: str | None = None
    rejection: Rejection | None = None
    signed_at: datetime | None = Field(None, description="When it was signed (UTC)")
    signature: str | None = Field(None, description="base64 Ed25519 signature of the canonical JSON")
