"""mutation.requests.v1: what producers publish."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from contracts import topics
from contracts.common import Actor, Intent
from contracts.envelope import Envelope, Id


class ResolutionStrategy(StrEnum):
    """What execution does when the state moved since the request's base version."""

    reject_stale = "reject_stale"
    require_renewed_approval = "require_renewed_approval"
    revalidate_on_latest = "revalidate_on_latest"
    rebase_if_disjoint = "rebase_if_disjoint"


class MutationRequested(Envelope):
    """A producer asks for a governed change to one state document."""

    topic: ClassVar[str] = topics.REQUESTS
    message_type: Literal["MutationRequested"] = "MutationRequested"
    request_id: Id = Field(description="Client-chosen idempotency key of the request")
    state_id: Id = Field(description="The state document to change; also the Kafka key")
    state_type: str = Field("document", max_length=200, description="Kind of state, e.g. feature-flags")
    mutation_type: str = Field(max_length=200, description="Registered mutation type, e.g. json.patch")
    payload: dict[str, Any] = Field(default_factory=dict, description="Mutation-type specific payload")
    intent: Intent = Field(default_factory=Intent, description="Classification used by policies")
    requester: Actor = Field(description="Who asks")
    reason: str | None = Field(None, description="Why the change is wanted")
    expected_version: int | None = Field(
        None, ge=0, description="Version the change was written against (0 = state does not exist yet)"
    )
    resolution_strategy: ResolutionStrategy | None = Field(
        None, description="Stale handling; default depends on expected_version and approval"
    )
    expires_at: datetime | None = Field(None, description="Deadline for the request to be decided")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free metadata")
