"""Constructors for the decision log entries, one per category."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.domain.model import SYSTEM, Actor, Decision


def lifecycle(code: str, at: datetime, reason: str | None = None, actor: Actor = SYSTEM, **metadata: Any) -> Decision:
    """A lifecycle decision (submitted, pending, approved, rejected, executed, failed, ...)."""
    return Decision(category="lifecycle", code=code, reason=reason, actor=actor, at=at, metadata=metadata)


def rejected(
    at: datetime, code: str, category: str, message: str, actor: Actor = SYSTEM, **metadata: Any
) -> Decision:
    """A lifecycle rejection with its structured reason in metadata.rejection."""
    rejection = {"code": code, "category": category, "message": message}
    return lifecycle("rejected", at, message, actor, rejection=rejection, **metadata)


def approval(code: str, at: datetime, reason: str | None = None, actor: Actor = SYSTEM, **metadata: Any) -> Decision:
    """An approval decision (requested, granted, rejected, quorum_satisfied, expired)."""
    return Decision(category="approval", code=code, reason=reason, actor=actor, at=at, metadata=metadata)


def resolution(code: str, at: datetime, expected: int, current: int, reason: str | None = None) -> Decision:
    """A version-resolution decision, always with the base and current versions."""
    return Decision(
        category="version_resolution",
        code=code,
        reason=reason,
        at=at,
        metadata={"base_version": expected, "current_version": current},
    )


def policy_actor(policy: str | None) -> Actor:
    """The actor recorded for a policy's decision."""
    return Actor(actor_id=policy or "default", actor_name=policy or "default policy", actor_type="policy")
