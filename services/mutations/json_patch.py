"""`json.patch`: RFC 6902 JSON Patch, payload {"patch": [operations]}."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from services.domain.diff import diff
from services.domain.errors import InvalidPayload, MutationNotApplicable
from services.domain.model import StateDocument
from services.domain.mutation_types import Applied, MutationType, require_dict


class JsonPatch(MutationType):
    """Apply an RFC 6902 patch to the document."""

    name = "json.patch"

    def _patch(self, payload: dict[str, Any]) -> jsonpatch.JsonPatch:
        operations = require_dict(payload, "patch", list)
        try:
            return jsonpatch.JsonPatch(operations)
        except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException, TypeError) as exc:
            raise InvalidPayload(f"invalid JSON Patch: {exc}") from exc

    def validate(self, state: StateDocument, payload: dict[str, Any]) -> None:
        self._patch(payload)  # jsonpatch checks every operation when it builds the patch

    def apply(self, state: StateDocument, payload: dict[str, Any]) -> Applied:
        patch = self._patch(payload)
        try:
            new = patch.apply(copy.deepcopy(state.data))
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise MutationNotApplicable(f"JSON Patch does not apply: {exc}", code="patch_not_applicable") from exc
        if not isinstance(new, dict):
            raise MutationNotApplicable("a state document must stay a JSON object", code="patch_not_applicable")
        return Applied(data=new, changes=tuple(diff(state.data, new)))

    def touched_paths(self, payload: dict[str, Any]) -> set[str]:
        ops = [op for op in payload.get("patch", []) if isinstance(op, dict)]
        paths = {op.get("path", "") for op in ops}
        paths |= {op["from"] for op in ops if isinstance(op.get("from"), str)}  # only a text `from` is a pointer
        return paths
