"""mutation.dead-letter.v1: inbound messages that could not be accepted, with the raw bytes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from contracts import topics
from contracts.envelope import Envelope

RAW_LIMIT = 64 * 1024


class MessageRejected(Envelope):
    """An inbound message was invalid; where it came from, why, and its bytes."""

    topic: ClassVar[str] = topics.DEAD_LETTER
    message_type: Literal["MessageRejected"] = "MessageRejected"
    source_topic: str
    source_partition: int
    source_offset: int
    source_key: str | None = None
    code: str = Field(description="Dead-letter code (see README catalogue)")
    reason: str
    size: int = Field(description="Size of the raw message in bytes")
    sha256: str = Field(description="sha256 hex of the raw message")
    raw: str = Field(description="base64 of the raw message, at most 64 KiB (truncated above)")
