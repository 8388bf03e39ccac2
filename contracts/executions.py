"""mutation.executions.v1 and mutation.internal.execute.v1."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import topics
from contracts.envelope import Envelope, Id


class Change(BaseModel):
    """One effective change to the document."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    op: str = Field(description="add | remove | replace")
    path: str = Field(description="JSON Pointer")
    old: Any = None
    new: Any = None


class ExecuteApproved(Envelope):
    """Internal command: execute this approved request (at this revision)."""

    topic: ClassVar[str] = topics.EXECUTE
    message_type: Literal["ExecuteApproved"] = "ExecuteApproved"
    request_id: Id
    state_id: Id
    revision: int = Field(description="Request revision that approved it; a later revision voids this")


class MutationExecuted(Envelope):
    """A request was applied to its state."""

    topic: ClassVar[str] = topics.EXECUTIONS
    message_type: Literal["MutationExecuted"] = "MutationExecuted"
    request_id: Id
    state_id: Id
    previous_version: int
    resulting_version: int
    changes: list[Change]
    document: dict[str, Any] | None = Field(None, description="Resulting state; omitted above a size limit")
    execution_kind: Literal["standard", "compensation"] = "standard"
    executed_at: datetime


class MutationFailed(Envelope):
    """A request could not be applied; the state is unchanged."""

    topic: ClassVar[str] = topics.EXECUTIONS
    message_type: Literal["MutationFailed"] = "MutationFailed"
    request_id: Id
    state_id: Id
    code: str
    reason: str
    version: int = Field(description="The state's version, unchanged")
