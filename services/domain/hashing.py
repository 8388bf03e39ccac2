"""Canonical JSON and the hashes that bind approvals and dedupe requests."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the form every hash and signature is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_hex(value: Any) -> str:
    """sha256 hex of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def intent_hash(state_id: str, state_type: str, mutation_type: str, payload: dict[str, Any]) -> str:
    """What approvers approve: the change itself, independent of who asked or when."""
    return sha256_hex(
        {"state_id": state_id, "state_type": state_type, "mutation_type": mutation_type, "payload": payload}
    )
