"""Engine behaviour on the real databases: transient-error classification, several SQLite processes at once."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from services.store.db import is_transient, make_engine
from services.store.errors import ConcurrencyConflict
from services.store.migrate import migrate
from services.store.uow import Store


async def pg_error(url: str, sqlstate: str) -> DBAPIError:
    """A real error with this SQLSTATE, raised by the server and wrapped by SQLAlchemy."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(
                    text(f"DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{sqlstate}'; END $$")
                )
        return caught.value
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_errors_are_classified(postgres_url: str) -> None:
    for sqlstate in ("40001", "40P01", "55P03", "57P01", "08006", "53300"):  # serialization, deadlock, ...
        assert is_transient(await pg_error(postgres_url, sqlstate)), sqlstate
    for sqlstate in ("22012", "23505", "42601"):  # division by zero, unique violation, syntax error
        assert not is_transient(await pg_error(postgres_url, sqlstate)), sqlstate


async def test_sqlite_locked_and_other_errors_are_classified(sqlite_url: str) -> None:
    await migrate(sqlite_url)
    holder = make_engine(sqlite_url)
    # No busy timeout, so the lock error comes at once instead of after 30 s.
    impatient = create_async_engine(sqlite_url, connect_args={"timeout": 0})
    try:
        async with holder.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock
            await conn.execute(text("SELECT 1"))
            with pytest.raises(DBAPIError) as locked:
                async with impatient.begin() as other:
                    await other.execute(text("DELETE FROM relay_lease"))
        assert "locked" in str(locked.value) and is_transient(locked.value)
    finally:
        await holder.dispose()
        await impatient.dispose()
    assert is_transient(ConcurrencyConflict("lost"))
    assert not is_transient(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    assert not is_transient(ValueError("bad input"))


WORKER = textwrap.dedent("""
    import asyncio, sys
    import stamina
    from services.domain.model import StateDocument
    from services.store.db import is_transient, make_engine
    from services.store.uow import Store

    async def main(url: str, who: str, n: int) -> None:
        store = Store(make_engine(url))
        for i in range(n):
            async for attempt in stamina.retry_context(on=is_transient, attempts=10):
                with attempt:
                    async with store.begin() as tx:  # read, then write: the SQLITE_BUSY_SNAPSHOT pattern
                        s = await tx.get_state("shared") or StateDocument(state_id="shared")
                        new = s.model_copy(update={"version": s.version + 1})
                        await tx.save_state(new, expected_version=s.version, request_id=f"{who}-{i}", changes=[])
        await store.engine.dispose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
""")


async def test_sqlite_shared_by_processes(sqlite_url: str, tmp_path: Path) -> None:
    await migrate(sqlite_url)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        await asyncio.create_subprocess_exec(sys.executable, str(script), sqlite_url, f"w{n}", "40")
        for n in range(4)
    ]
    assert [await w.wait() for w in workers] == [0, 0, 0, 0]
    store = Store(make_engine(sqlite_url))
    try:
        async with store.begin() as tx:
            state = await tx.get_state("shared")
            history = await tx.history("shared", limit=1000)
    finally:
        await store.engine.dispose()
    assert state is not None and state.version == 160 and len(history) == 160
