"""Find a reachable Redis / PostgreSQL and give each test run its own PostgreSQL database."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy.engine import URL, make_url

LOCAL_REDIS = "redis://127.0.0.1:6379/15"  # db 15: stay clear of whatever a developer keeps in db 0
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def postgres_answers(url: str) -> bool:
    """True if we can log in to the PostgreSQL server at `url`."""
    return asyncio.run(_answers(_maintenance(url)))


def create_fresh_database(server_url: str) -> str:
    """Create `mutator_test_<random>` on the server; returns the SQLAlchemy URL that points at it."""
    name = f"mutator_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(_maintenance(server_url), f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(db_url: str) -> None:
    """Drop the database `db_url` points at, disconnecting any pool a test left open."""
    name = make_url(db_url).database
    # FORCE (PostgreSQL 13+) ends sessions from engines a test forgot to dispose.
    asyncio.run(_execute(_maintenance(db_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _maintenance(url: str) -> str:
    """The same server's `postgres` database: the one named in `url` may not exist yet, or be the one to drop."""
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    """asyncpg wants plain `postgresql://`, not SQLAlchemy's `postgresql+asyncpg://`."""
    parsed: URL = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _answers(url: str) -> bool:
    """Try one login with a short timeout."""
    try:
        conn = await asyncpg.connect(_dsn(url), timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def _execute(url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE refuse to run inside one)."""
    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
