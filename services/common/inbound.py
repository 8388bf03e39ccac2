"""The one parse guard: raw Kafka record -> contract message, or a dead-letter verdict with a code."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from contracts.deadletter import RAW_LIMIT, MessageRejected
from contracts.envelope import MAX_MESSAGE_BYTES, Envelope

MAX_ID = 200
"""processed_message.message_id holds 200 characters; longer dedupe ids are recorded by their hash."""

MAX_DEPTH = 64
"""Deeper JSON is refused: pydantic cannot serialise past 255 levels and no real change needs it."""


class Record(Protocol):
    """What we read of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Inbound:
    """One consumed record: its message when it parsed; `code` set when it is to be dead-lettered."""

    record: Record
    message: Envelope | None = None
    code: str | None = None
    reason: str | None = None

    @property
    def dedupe_id(self) -> str:
        """What `processed_message` records: the message id, or the record's identity for garbage."""
        if self.message is not None:
            return self.message.message_id
        digest = hashlib.sha256(self.record.value or b"").hexdigest()[:16]
        return _bounded(f"raw:{self.record.topic}:{self.record.partition}:{self.record.offset}:{digest}")

    @property
    def position_id(self) -> str:
        """The message id at this record's position: a redelivery repeats it, a re-publish does not."""
        return _bounded(f"{self.dedupe_id}@{self.record.topic}/{self.record.partition}/{self.record.offset}")

    @property
    def key(self) -> str:
        """The Kafka key as text ('' when absent or not UTF-8)."""
        try:
            return (self.record.key or b"").decode()
        except UnicodeDecodeError:
            return ""


def parse(record: Record, allowed: dict[str, type[Envelope]]) -> Inbound:
    """Validate one record against the messages allowed on its topic (DESIGN §4 inbound rules)."""
    raw = record.value or b""
    if len(raw) > MAX_MESSAGE_BYTES:
        return Inbound(record, code="message_too_large", reason=f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Inbound(record, code="invalid_json", reason=f"not JSON: {str(exc)[:200]}")
    if not isinstance(doc, dict):
        return Inbound(record, code="invalid_json", reason="a message is a JSON object")
    if "message_id" not in doc:  # without it, a redelivery could not be told from a new message
        return Inbound(record, code="invalid_message", reason="message_id: Field required")
    # Nesting needs a bracket per level, so most messages are cleared by counting bytes.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(doc) > MAX_DEPTH:
        return Inbound(record, code="invalid_message", reason=f"nested deeper than {MAX_DEPTH} levels")
    message_type = doc.get("message_type")
    model = allowed.get(message_type) if isinstance(message_type, str) else None
    if model is None:
        return Inbound(record, code="unknown_message_type",
                       reason=f"message_type {message_type!r} is not one of {sorted(allowed)} on this topic")
    try:
        message = model.model_validate(doc)
    except (ValidationError, RecursionError) as exc:
        return Inbound(record, code="invalid_message", reason=_summary(exc))
    state_id = getattr(message, "state_id", None)
    key = Inbound(record).key
    if state_id is not None and key != state_id:
        return Inbound(record, message=message, code="key_mismatch",
                       reason=f"Kafka key {key!r} is not the message's state_id {state_id!r}")
    return Inbound(record, message=message)


def rejected(item: Inbound, *, code: str | None = None, reason: str | None = None) -> MessageRejected:
    """The dead-letter record for an inbound message (raw bytes kept, base64, at most 64 KiB)."""
    raw = item.record.value or b""
    return MessageRejected(
        source_topic=item.record.topic,
        source_partition=item.record.partition,
        source_offset=item.record.offset,
        source_key=item.key or None,
        code=code or item.code or "invalid_message",
        reason=(reason or item.reason or "")[:2000],
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        raw=base64.b64encode(raw[:RAW_LIMIT]).decode(),
        correlation_id=getattr(item.message, "correlation_id", None),
        causation_id=getattr(item.message, "message_id", None),
    )


def _bounded(identity: str) -> str:
    """`identity`, or its sha256 when it is too long to record."""
    if len(identity) <= MAX_ID:
        return identity
    return f"sha256:{hashlib.sha256(identity.encode()).hexdigest()}"


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _summary(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts: list[Any] = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10]]
        return "; ".join(parts)
    return type(exc).__name__
