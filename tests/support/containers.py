"""testcontainers fallbacks, used only when a Docker engine answers."""

from __future__ import annotations

import functools
from collections.abc import Callable

import docker
import docker.errors


@functools.cache
def docker_available() -> bool:
    """True if a Docker engine answers a ping (checked once per run)."""
    # docker.from_env() itself raises when the socket is missing, so both calls sit in the try.
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except docker.errors.DockerException:
        return False


def start_redis_container() -> tuple[str, Callable[[], None]]:
    """Start a Redis container; returns its URL and a stop function."""
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers < 4.13 has no `community` namespace
        from testcontainers.redis import RedisContainer

    container = RedisContainer("redis:7-alpine").start()
    host = container.get_container_host_ip()
    port = container.get_exposed_port(6379)
    return f"redis://{host}:{port}/0", container.stop


def start_postgres_container() -> tuple[str, Callable[[], None]]:
    """Start a PostgreSQL container; returns an asyncpg SQLAlchemy URL and a stop function."""
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.13 has no `community` namespace
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer("postgres:16-alpine", driver="asyncpg").start()
    return container.get_connection_url(), container.stop
