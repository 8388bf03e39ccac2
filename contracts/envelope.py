"""Fields every wire message carries at its top level, and the shared field types."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_MESSAGE_BYTES = 1024 * 1024
"""Inbound messages larger than this are dead-lettered (`message_too_large`)."""

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="Printable identifier, at most 200 characters"),
]


def new_message_id() -> str:
    """A fresh message id (uuid4 text)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Envelope fields: identity, type, schema version, time and causality of a message."""

    # Unknown fields are ignored so that additive changes stay compatible.
    model_config = ConfigDict(extra="ignore", frozen=True)
    topic: ClassVar[str] = ""

    message_id: Id = Field(default_factory=new_message_id, description="Unique id of this message (uuid)")
    message_type: str = Field(description="The message class name; must match the topic")
    schema_version: int = Field(1, description="Schema version of this message type")
    occurred_at: datetime = Field(default_factory=utc_now, description="When it happened (UTC, ISO 8601)")
    correlation_id: Id | None = Field(None, description="The request's correlation id, carried end to end")
    causation_id: Id | None = Field(None, description="message_id of the message that caused this one")

    def to_json(self) -> bytes:
        """Wire bytes (UTF-8 JSON)."""
        return self.model_dump_json().encode()

    def wire(self) -> dict[str, Any]:
        """The JSON-compatible dict of this message."""
        return self.model_dump(mode="json")
