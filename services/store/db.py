"""Engine factory (SQLite shared by several processes, or PostgreSQL) and transient-error classification."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.store.errors import ConcurrencyConflict

SQLITE_BUSY_TIMEOUT_MS = 30_000

# SQLSTATE classes/codes worth retrying: connection exceptions, serialization failure and deadlock,
# insufficient resources, operator intervention (shutdown, cannot connect now), lock not available.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "55P03", "58000", "58030")


READ_ONLY = "mutator_read_only"


def make_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_recycle=1800)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    _sqlite_transactions(engine)
    return engine


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine for transactions that only read (on SQLite they then begin deferred)."""
    return engine.execution_options(**{READ_ONLY: True})


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """The SQLAlchemy recipe: we emit BEGIN ourselves, so it can be BEGIN IMMEDIATE."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from emitting its own deferred BEGIN (and from autocommitting DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # WAL lets readers in other processes run while one writer commits.
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the tail.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # reads only: WAL readers take no lock and block no writer
            return
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY_SNAPSHOT
        # when another process wrote in between; IMMEDIATE takes the write lock up front (waiting on
        # busy_timeout), so every transaction's reads are still current when it writes.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_transient(exc: BaseException) -> bool:
    """True for infrastructure errors worth retrying: lost CAS, locked database, lost connection, deadlock."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _transient_here(current):
            return True
        # Follow explicit wrapping only (`raise ... from`, SQLAlchemy's `.orig`), not incidental context.
        current = getattr(current, "orig", None) or current.__cause__
    return False


def _transient_here(exc: BaseException) -> bool:
    if isinstance(
        exc, ConcurrencyConflict | OperationalError | InterfaceError | DisconnectionError | PoolTimeout
    ):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):  # OSError subclasses of a lost socket / timeout
        return True
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
