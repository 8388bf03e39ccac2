"""Effective changes between two JSON documents, as add/remove/replace on JSON Pointers."""

from __future__ import annotations

from typing import Any

from services.domain.model import Change


def pointer(parts: list[str]) -> str:
    """JSON Pointer (RFC 6901) of a path."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def diff(old: Any, new: Any, path: list[str] | None = None) -> list[Change]:
    """Changes that turn `old` into `new`; objects are compared key by key, anything else whole."""
    path = path or []
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(old.keys() | new.keys()):
            sub = [*path, str(key)]
            if key not in new:
                changes.append(Change(op="remove", path=pointer(sub), old=old[key]))
            elif key not in old:
                changes.append(Change(op="add", path=pointer(sub), new=new[key]))
            else:
                changes.extend(diff(old[key], new[key], sub))
        return changes
    if old == new and type(old) is type(new):
        return []
    return [Change(op="replace", path=pointer(path), old=old, new=new)]


def overlaps(a: str, b: str) -> bool:
    """Whether two JSON Pointers touch the same subtree (one is a prefix of the other)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/") or a == "" or b == ""
