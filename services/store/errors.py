"""Store errors."""

from __future__ import annotations


class ConcurrencyConflict(Exception):
    """A compare-and-set lost: someone else changed the row first; the handler retries the whole transaction."""
