"""Per-state execution locks in Redis. An optimisation only: the SQL version compare-and-set fences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

log = structlog.get_logger(__name__)


class LockBusy(TimeoutError):
    """Another holder kept a state's lock past our wait; transient (a TimeoutError): the caller retries."""


class StateLocks:
    """Holds the locks of a set of states for the length of one transaction."""

    def __init__(self, redis: Redis | None, *, ttl_ms: int, prefix: str = "mutator:") -> None:
        self._redis, self._ttl_s, self._prefix = redis, ttl_ms / 1000, prefix

    @asynccontextmanager
    async def hold(self, state_ids: Iterable[str]) -> AsyncIterator[None]:
        """Acquire every lock (concurrently), yield, release. Redis down: go on unlocked."""
        locks = [self._lock(s) for s in sorted(set(state_ids))] if self._redis else []
        # Every acquire runs to its end, so none is left holding a lock that nobody releases.
        results = await asyncio.gather(*(lock.acquire() for lock in locks), return_exceptions=True)
        held = [lock for lock, ok in zip(locks, results, strict=True) if ok is True]
        failed = [r for r in results if isinstance(r, BaseException)]
        unexpected = [r for r in failed if not isinstance(r, RedisError)]
        if unexpected or False in results:
            await asyncio.gather(*(self._release(lock) for lock in held))  # keep none of them
            if unexpected:
                raise unexpected[0]
            raise LockBusy(f"{results.count(False)} state locks still held elsewhere")
        if failed:
            # Correctness does not depend on the lock; losing Redis only loses the saved work.
            log.warning("redis lock unavailable; relying on the SQL compare-and-set", error=str(failed[0]))
        try:
            yield
        finally:
            await asyncio.gather(*(self._release(lock) for lock in held))

    def _lock(self, state_id: str) -> Lock:
        assert self._redis is not None
        return self._redis.lock(f"{self._prefix}lock:{state_id}", timeout=self._ttl_s, blocking_timeout=self._ttl_s)

    @staticmethod
    async def _release(lock: Lock) -> None:
        try:
            await lock.release()
        except (LockError, RedisError) as exc:  # expired meanwhile, or Redis gone: nothing to undo
            log.info("state lock release skipped", error=str(exc))
