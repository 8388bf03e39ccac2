"""`json.merge`: RFC 7386 JSON Merge Patch, payload {"merge": {...}}."""

from __future__ import annotations

from typing import Any

from services.domain.diff import diff, pointer
from services.domain.model import StateDocument
from services.domain.mutation_types import Applied, MutationType, require_dict


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 §2, as written there."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class JsonMerge(MutationType):
    """Merge an object into the document; null removes a key."""

    name = "json.merge"

    def validate(self, state: StateDocument, payload: dict[str, Any]) -> None:
        require_dict(payload, "merge", dict)

    def apply(self, state: StateDocument, payload: dict[str, Any]) -> Applied:
        new = merge_patch(state.data, require_dict(payload, "merge", dict))
        return Applied(data=new, changes=tuple(diff(state.data, new)))

    def touched_paths(self, payload: dict[str, Any]) -> set[str]:
        return {pointer([key]) for key in payload.get("merge", {})}
