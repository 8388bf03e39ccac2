"""The backing-service fixtures hand out working, isolated endpoints."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.mark.redis
async def test_redis_url_answers(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.postgres
async def test_postgres_url_is_a_database_of_this_run(postgres_url: str) -> None:
    # Other tests of the session migrate into it, so only its identity is checked here.
    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("select current_database()"))).scalar_one()
    finally:
        await engine.dispose()
    assert name.startswith("mutator_test_") and name == postgres_url.rsplit("/", 1)[-1]


async def test_sqlite_url_is_writable(sqlite_url: str) -> None:
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("create table t (x int)"))
            await conn.execute(text("insert into t values (1)"))
    finally:
        await engine.dispose()
