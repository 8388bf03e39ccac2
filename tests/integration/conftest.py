"""Store fixtures: a migrated database on SQLite or PostgreSQL (parametrised), its engine and Store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.db import make_engine
from services.store.migrate import migrate
from services.store.uow import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A database URL: a fresh SQLite file per test, or the session's PostgreSQL database (shared: use unique ids)."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url"))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database's engine, disposed after the test."""
    await migrate(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> Store:
    """A Store on the migrated database."""
    return Store(engine)
