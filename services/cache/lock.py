"""Per-state execution locks in Redis. An optimisation only: the SQL version compare-and-set fences.

A batch may touch hundreds of states, so all of its locks are taken and released in pipelined
round trips (SET NX PX with one token per batch; release with redis-py's own compare-and-delete
script), rather than one lock object and connection per state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)
RETRY_S = 0.02


class LockBusy(TimeoutError):
    """Another holder kept a state's lock past our wait; transient (a TimeoutError): the caller retries."""


class StateLocks:
    """Holds the locks of a set of states for the length of one transaction."""

    def __init__(self, redis: Redis | None, *, ttl_ms: int, prefix: str = "mutator:") -> None:
        self._redis, self._ttl_ms, self._prefix = redis, ttl_ms, prefix
        self._release_script = redis.register_script(Lock.LUA_RELEASE_SCRIPT) if redis else None

    @asynccontextmanager
    async def hold(self, state_ids: Iterable[str]) -> AsyncIterator[None]:
        """Acquire every lock, yield, release. Busy past the lock's lifetime: LockBusy. Redis down: unlocked."""
        keys = [f"{self._prefix}lock:{s}" for s in sorted(set(state_ids))] if self._redis else []
        token = uuid.uuid4().hex
        held: list[str] = []
        try:
            held = await self._acquire(keys, token)
        except RedisError as exc:
            # Correctness does not depend on the lock; losing Redis only loses the saved work.
            log.warning("redis lock unavailable; relying on the SQL compare-and-set", error=str(exc))
        try:
            yield
        finally:
            await self._release(held, token)

    async def _acquire(self, keys: list[str], token: str) -> list[str]:
        assert self._redis is not None or not keys
        held: list[str] = []
        pending = keys
        deadline = asyncio.get_running_loop().time() + self._ttl_ms / 1000
        try:
            while pending:
                async with self._redis.pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
                    for key in pending:
                        pipe.set(key, token, nx=True, px=self._ttl_ms)
                    results = await pipe.execute()
                held += [k for k, ok in zip(pending, results, strict=True) if ok]
                pending = [k for k, ok in zip(pending, results, strict=True) if not ok]
                if pending and asyncio.get_running_loop().time() >= deadline:
                    raise LockBusy(f"{len(pending)} state locks still held elsewhere")
                if pending:
                    await asyncio.sleep(RETRY_S)
        except BaseException:
            await self._release(held, token)  # keep none of them
            raise
        return held

    async def _release(self, keys: list[str], token: str) -> None:
        if not keys or self._redis is None or self._release_script is None:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    await self._release_script(keys=[key], args=[token], client=pipe)
                await pipe.execute()
        except RedisError as exc:  # Redis gone: the locks expire by themselves
            log.info("state lock release skipped", error=str(exc))
