"""Which messages travel on which topic, and in which direction."""

from __future__ import annotations

from contracts import topics
from contracts.approvals import ApprovalSubmitted
from contracts.commands import CancelRequested
from contracts.deadletter import MessageRejected
from contracts.decisions import ApprovalRefused, CommandRefused, RequestDecided, RequestDuplicate
from contracts.envelope import Envelope
from contracts.executions import ExecuteApproved, MutationExecuted, MutationFailed
from contracts.requests import MutationRequested

CATALOG: dict[str, tuple[str, list[type[Envelope]]]] = {
    topics.REQUESTS: ("in", [MutationRequested]),
    topics.APPROVALS: ("in", [ApprovalSubmitted]),
    topics.COMMANDS: ("in", [CancelRequested]),
    topics.DECISIONS: ("out", [RequestDecided, ApprovalRefused, RequestDuplicate, CommandRefused]),
    topics.EXECUTIONS: ("out", [MutationExecuted, MutationFailed]),
    topics.SIDE_EFFECTS: ("out", []),
    topics.DEAD_LETTER: ("out", [MessageRejected]),
    topics.EXECUTE: ("internal", [ExecuteApproved]),
}


def messages_for(topic: str) -> dict[str, type[Envelope]]:
    """message_type -> model for the messages allowed on a topic (catalog name, no prefix)."""
    return {m.__name__: m for m in CATALOG[topic][1]}


def all_messages() -> list[type[Envelope]]:
    """Every message model in the contract."""
    return [m for _, models in CATALOG.values() for m in models]
