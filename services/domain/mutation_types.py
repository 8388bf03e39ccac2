"""Mutation types: how a named kind of change validates against and applies to a document."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.domain.errors import InvalidPayload
from services.domain.model import Change, StateDocument


@dataclass(frozen=True)
class Applied:
    """What applying a mutation produced: the new data and its effective changes."""

    data: dict[str, Any]
    changes: tuple[Change, ...]
    side_effects: tuple[dict[str, Any], ...] = field(default=())


class MutationType:
    """Base of every mutation type. Subclasses set `name` and implement `apply`."""

    name: ClassVar[str] = ""

    def validate(self, state: StateDocument, payload: dict[str, Any]) -> None:
        """Raise InvalidPayload when the payload does not fit this type (state-independent by default)."""

    def apply(self, state: StateDocument, payload: dict[str, Any]) -> Applied:
        """Apply to `state`; raise MutationNotApplicable when it does not apply."""
        raise NotImplementedError

    def touched_paths(self, payload: dict[str, Any]) -> set[str]:
        """JSON Pointers the mutation may change (for conflict checks); root when unknown."""
        return {""}


class MutationRegistry:
    """Mutation types by name."""

    def __init__(self, types: Iterable[MutationType] = ()) -> None:
        self._types: dict[str, MutationType] = {}
        for t in types:
            self.register(t)

    def register(self, mutation_type: MutationType) -> None:
        """Add a type; a second type with the same name replaces the first."""
        self._types[mutation_type.name] = mutation_type

    def get(self, name: str) -> MutationType | None:
        """The type called `name`, or None when unknown."""
        return self._types.get(name)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._types)


def require_dict(payload: dict[str, Any], key: str, kind: type) -> Any:
    """payload[key] if it has the expected kind, else InvalidPayload."""
    value = payload.get(key)
    if not isinstance(value, kind):
        raise InvalidPayload(f"payload.{key} must be a {kind.__name__}")
    return value
