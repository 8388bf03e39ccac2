"""mutation.commands.v1: operator and system commands."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts import topics
from contracts.common import Actor
from contracts.envelope import Envelope, Id


class CancelRequested(Envelope):
    """Cancel a request that has not executed (its requester, or an operator principal)."""

    topic: ClassVar[str] = topics.COMMANDS
    message_type: Literal["CancelRequested"] = "CancelRequested"
    request_id: Id
    state_id: Id = Field(description="Kafka key")
    actor: Actor = Field(description="Who cancels; must be the requester or hold the operator role")
    reason: str | None = None
