"""Recent-decision cache: the latest decision per request and latest version per state, in Redis.

A hint for hot reads; SQL holds the truth. Entries carry the sequence/version they describe and
an older write never replaces a newer one, so the cache cannot run backwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# KEYS[1] = key, ARGV[1] = order number, ARGV[2] = value, ARGV[3] = ttl seconds
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'n')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'n', ARGV[1], 'v', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class DecisionCache:
    """Latest decision of a request, latest executed version of a state."""

    def __init__(self, redis: Redis | None, *, ttl_s: int, prefix: str = "mutator:") -> None:
        self._redis, self._ttl, self._prefix = redis, ttl_s, prefix
        self._script = redis.register_script(_SET_IF_NEWER) if redis else None

    async def record_decision(self, request_id: str, sequence: int, value: dict[str, Any]) -> None:
        """Remember the decision with this sequence unless a later one is already cached."""
        await self._set(f"{self._prefix}decision:{request_id}", sequence, value)

    async def record_state(self, state_id: str, version: int, value: dict[str, Any]) -> None:
        """Remember a state's version unless a later one is already cached."""
        await self._set(f"{self._prefix}state:{state_id}", version, value)

    async def record_many(self, decisions: Iterable[tuple[str, int, dict[str, Any]]],
                          states: Iterable[tuple[str, int, dict[str, Any]]] = ()) -> None:
        """Many record_decision/record_state writes in one pipelined round trip."""
        entries = [(f"{self._prefix}decision:{rid}", n, v) for rid, n, v in decisions]
        entries += [(f"{self._prefix}state:{sid}", n, v) for sid, n, v in states]
        if self._script is None or self._redis is None or not entries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, order, value in entries:
                    await self._script(keys=[key], args=[order, json.dumps(value, default=str), self._ttl],
                                       client=pipe)
                await pipe.execute()
        except RedisError as exc:
            log.warning("decision cache write skipped", error=str(exc))

    async def latest_decision(self, request_id: str) -> dict[str, Any] | None:
        """The cached latest decision, or None (miss, or Redis unavailable)."""
        return await self._get(f"{self._prefix}decision:{request_id}")

    async def latest_state(self, state_id: str) -> dict[str, Any] | None:
        """The cached latest state version record, or None."""
        return await self._get(f"{self._prefix}state:{state_id}")

    async def _set(self, key: str, order: int, value: dict[str, Any]) -> None:
        if self._script is None:
            return
        try:
            await self._script(keys=[key], args=[order, json.dumps(value, default=str), self._ttl])
        except RedisError as exc:
            log.warning("decision cache write skipped", error=str(exc))

    async def _get(self, key: str) -> dict[str, Any] | None:
        if self._redis is None:
            return None
        try:
            raw = await self._redis.hget(key, "v")
        except RedisError as exc:
            log.warning("decision cache read skipped", error=str(exc))
            return None
        return json.loads(raw) if raw else None
