"""Durations written as 90s, 30m, 1h, 2d (or plain seconds)."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter

_ISO = TypeAdapter(timedelta)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_duration(text: str | float) -> timedelta:
    """`1h` -> timedelta(hours=1); ISO 8601 (`PT1H`, how stored specs serialise) too."""
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    if text.startswith("P"):
        return _ISO.validate_python(text)
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 2d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])
