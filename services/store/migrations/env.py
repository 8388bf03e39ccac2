"""Alembic environment: runs on a connection handed over by services.store.migrate, or opens its own."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.store.db import make_engine
from services.store.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    # Batch mode: SQLite cannot ALTER most things, so changes are made by copying the table.
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True
    )


def run_on(connection: Connection) -> None:
    """Run the migrations on an open synchronous connection."""
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    """Emit SQL to stdout instead of executing it (`alembic upgrade --sql`)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (connection := config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))
