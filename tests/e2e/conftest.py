"""One running stack per database backend, shared by the e2e tests of a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.stack import Client, open_client, stack_settings, start_stack


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def stack(request: pytest.FixtureRequest, kafka_bootstrap: str, redis_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """The four services as processes on the real broker, Redis and SQLite or PostgreSQL."""
    data_dir: Path = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{data_dir / 'mutator.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    (data_dir / "logs").mkdir()
    settings = stack_settings(kafka_bootstrap, redis_url, database_url, data_dir)
    services = await start_stack(settings)
    client = await open_client(settings)
    try:
        yield client
    finally:
        await client.producer.stop()
        await client.events.stop()
        await services.stop()
