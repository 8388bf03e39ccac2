"""Per-state locks and the recent-decision cache against a real Redis, and with Redis unreachable."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.cache.decisions import DecisionCache
from services.cache.lock import LockBusy, StateLocks
from services.store.db import is_transient

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix private to the test; its keys are deleted afterwards."""
    value = f"test-{uuid.uuid4().hex[:12]}:"
    yield value
    keys = [k async for k in redis.scan_iter(match=f"{value}*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(UNREACHABLE, socket_connect_timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


# -- StateLocks --


async def test_hold_takes_each_state_lock_with_its_ttl_and_releases_it(redis: Redis, prefix: str) -> None:
    locks = StateLocks(redis, ttl_ms=5000, prefix=prefix)
    async with locks.hold(["s1", "s2", "s1"]):
        assert await redis.exists(f"{prefix}lock:s1", f"{prefix}lock:s2") == 2
        assert 0 < await redis.pttl(f"{prefix}lock:s1") <= 5000
    assert await redis.exists(f"{prefix}lock:s1", f"{prefix}lock:s2") == 0


async def test_hold_releases_the_lock_when_the_body_raises(redis: Redis, prefix: str) -> None:
    locks = StateLocks(redis, ttl_ms=5000, prefix=prefix)
    with pytest.raises(RuntimeError):
        async with locks.hold(["s1"]):
            raise RuntimeError("transaction failed")
    assert await redis.exists(f"{prefix}lock:s1") == 0


async def test_second_holder_of_a_held_state_gives_up_with_lock_busy(redis: Redis, prefix: str) -> None:
    first, second = StateLocks(redis, ttl_ms=10_000, prefix=prefix), StateLocks(redis, ttl_ms=300, prefix=prefix)
    async with first.hold(["s1"]):
        started = time.monotonic()
        with pytest.raises(LockBusy):
            async with second.hold(["s1"]):
                pytest.fail("entered a state another holder keeps")
        waited = time.monotonic() - started
        assert 0.1 <= waited < 3  # it waited (redis-py stops polling before a try past 300 ms)
        assert await redis.exists(f"{prefix}lock:s1") == 1  # still the first holder's


async def test_lock_busy_keeps_none_of_the_locks_it_did_get(redis: Redis, prefix: str) -> None:
    first, second = StateLocks(redis, ttl_ms=10_000, prefix=prefix), StateLocks(redis, ttl_ms=300, prefix=prefix)
    async with first.hold(["b"]):
        with pytest.raises(LockBusy):
            async with second.hold(["a", "b"]):
                pytest.fail("entered a state another holder keeps")
        assert await redis.exists(f"{prefix}lock:a") == 0


async def test_lock_busy_is_a_transient_error_the_consumer_retries() -> None:
    assert is_transient(LockBusy("held elsewhere"))


async def test_waiting_holder_gets_the_state_once_it_is_released(redis: Redis, prefix: str) -> None:
    first, second = StateLocks(redis, ttl_ms=10_000, prefix=prefix), StateLocks(redis, ttl_ms=3000, prefix=prefix)
    order: list[str] = []

    async def hold_briefly() -> None:
        async with first.hold(["s1"]):
            order.append("first in")
            await asyncio.sleep(0.2)
            order.append("first out")

    task = asyncio.create_task(hold_briefly())
    while not order:
        await asyncio.sleep(0.01)
    async with second.hold(["s1"]):
        order.append("second in")
    await task
    assert order == ["first in", "first out", "second in"]


async def test_holders_of_disjoint_states_proceed_concurrently(redis: Redis, prefix: str) -> None:
    locks = StateLocks(redis, ttl_ms=300, prefix=prefix)
    both_inside = asyncio.Barrier(2)

    async def hold(states: list[str]) -> None:
        async with locks.hold(states):
            await both_inside.wait()  # only returns when the other holder is inside too

    await asyncio.wait_for(asyncio.gather(hold(["a", "b"]), hold(["c"])), timeout=3)


async def test_hold_with_redis_unreachable_still_yields_and_warns(dead_redis: Redis) -> None:
    locks = StateLocks(dead_redis, ttl_ms=300)
    entered = False
    with capture_logs() as logs:
        async with locks.hold(["s1", "s2"]):
            entered = True
    assert entered
    assert any(e["log_level"] == "warning" and "redis lock unavailable" in e["event"] for e in logs)


async def test_hold_without_redis_yields() -> None:
    async with StateLocks(None, ttl_ms=300).hold(["s1"]):
        pass


# -- DecisionCache --


async def test_decision_cache_keeps_the_latest_decision_and_never_goes_back(redis: Redis, prefix: str) -> None:
    cache = DecisionCache(redis, ttl_s=60, prefix=prefix)
    assert await cache.latest_decision("r1") is None
    await cache.record_decision("r1", 3, {"sequence": 3, "status": "approved"})
    await cache.record_decision("r1", 2, {"sequence": 2, "status": "pending"})
    assert await cache.latest_decision("r1") == {"sequence": 3, "status": "approved"}
    await cache.record_decision("r1", 3, {"sequence": 3, "status": "rewritten"})
    assert await cache.latest_decision("r1") == {"sequence": 3, "status": "approved"}
    await cache.record_decision("r1", 4, {"sequence": 4, "status": "executed"})
    assert await cache.latest_decision("r1") == {"sequence": 4, "status": "executed"}
    assert await cache.latest_decision("r2") is None


async def test_decision_cache_keeps_the_latest_state_version(redis: Redis, prefix: str) -> None:
    cache = DecisionCache(redis, ttl_s=60, prefix=prefix)
    await cache.record_state("s1", 7, {"version": 7, "request_id": "r7"})
    await cache.record_state("s1", 5, {"version": 5, "request_id": "r5"})
    assert await cache.latest_state("s1") == {"version": 7, "request_id": "r7"}
    await cache.record_state("s1", 8, {"version": 8, "request_id": "r8"})
    assert await cache.latest_state("s1") == {"version": 8, "request_id": "r8"}


async def test_decision_cache_entries_expire_after_the_ttl(redis: Redis, prefix: str) -> None:
    cache = DecisionCache(redis, ttl_s=60, prefix=prefix)
    await cache.record_decision("r1", 1, {"sequence": 1})
    await cache.record_state("s1", 1, {"version": 1})
    assert 0 < await redis.ttl(f"{prefix}decision:r1") <= 60
    assert 0 < await redis.ttl(f"{prefix}state:s1") <= 60


async def test_decision_cache_with_redis_unreachable_skips_writes_and_misses(dead_redis: Redis) -> None:
    cache = DecisionCache(dead_redis, ttl_s=60, prefix="unreachable:")
    with capture_logs() as logs:
        await cache.record_decision("r1", 1, {"sequence": 1})
        await cache.record_state("s1", 1, {"version": 1})
        assert await cache.latest_decision("r1") is None
        assert await cache.latest_state("s1") is None
    events = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert events.count("decision cache write skipped") == 2
    assert events.count("decision cache read skipped") == 2


async def test_decision_cache_without_redis_is_a_permanent_miss() -> None:
    cache = DecisionCache(None, ttl_s=60)
    await cache.record_decision("r1", 1, {"sequence": 1})
    assert await cache.latest_decision("r1") is None and await cache.latest_state("s1") is None


async def test_record_many_writes_decisions_and_states_in_one_call_and_never_goes_backwards(
        redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    cache = DecisionCache(client, ttl_s=60, prefix=prefix)
    try:
        await cache.record_decision("r1", 5, {"sequence": 5})
        await cache.record_many([("r1", 3, {"sequence": 3}), ("r2", 1, {"sequence": 1})], [("s1", 2, {"version": 2})])

        assert await cache.latest_decision("r1") == {"sequence": 5}
        assert await cache.latest_decision("r2") == {"sequence": 1}
        assert await cache.latest_state("s1") == {"version": 2}
    finally:
        await client.delete(*[k async for k in client.scan_iter(f"{prefix}*")])
        await client.aclose()
