"""One running stack per database backend, shared by the e2e tests of a session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.stack import Client, open_client, stack_settings, start_stack


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(database URL, data dir) of one stack. Sync, because the postgres fixture runs its own loop."""
    data_dir: Path = tmp_path_factory.mktemp(f"stack-{request.param}")
    (data_dir / "logs").mkdir()
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{data_dir / 'mutator.db'}", data_dir
    return request.getfixturevalue("postgres_url"), data_dir


@pytest.fixture(scope="session")
async def stack(backend: tuple[str, Path], kafka_bootstrap: str, redis_url: str) -> AsyncIterator[Client]:
    """The four services as processes on the real broker, Redis and SQLite or PostgreSQL."""
    database_url, data_dir = backend
    settings = stack_settings(kafka_bootstrap, redis_url, database_url, data_dir,
                              policies_file=Path(__file__).parent / "policies.yaml")
    services = await start_stack(settings)
    client = await open_client(settings)
    try:
        yield client
    finally:
        await client.producer.stop()
        await client.events.stop()
        await services.stop()
