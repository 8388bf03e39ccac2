"""Example pack: feature flags stored as {"flags": {name: {"enabled": bool, "rollout": 0-100}}}."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.domain.diff import diff, pointer
from services.domain.errors import InvalidPayload, MutationNotApplicable
from services.domain.model import StateDocument
from services.domain.mutation_types import Applied, MutationType


class FlagChange(BaseModel):
    """Payload of `flags.set`."""

    model_config = ConfigDict(extra="forbid")
    flag: str = Field(min_length=1, max_length=200)
    enabled: bool
    rollout: int = Field(100, ge=0, le=100)


class SetFlag(MutationType):
    """Turn a flag on or off with a rollout percentage."""

    name = "flags.set"

    def _change(self, payload: dict[str, Any]) -> FlagChange:
        try:
            return FlagChange.model_validate(payload)
        except ValidationError as exc:
            raise InvalidPayload(f"flags.set payload: {exc.errors(include_url=False)}") from exc

    def validate(self, state: StateDocument, payload: dict[str, Any]) -> None:
        self._change(payload)

    def apply(self, state: StateDocument, payload: dict[str, Any]) -> Applied:
        change = self._change(payload)
        current = state.data.get("flags", {})
        if not isinstance(current, dict):
            raise MutationNotApplicable("the document's `flags` is not an object")
        flags = dict(current)
        flags[change.flag] = {"enabled": change.enabled, "rollout": change.rollout}
        new = {**state.data, "flags": flags}
        return Applied(data=new, changes=tuple(diff(state.data, new)))

    def touched_paths(self, payload: dict[str, Any]) -> set[str]:
        return {pointer(["flags", str(payload.get("flag", ""))])}
