"""The outbox relay: publishes the rows one service wrote, in id order, then deletes them."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.store.db import is_transient, read_only
from services.store.lease import claim_lease, release_lease
from services.store.tables import outbox
from services.store.uow import Store

# send(topic, key, payload, headers) -> awaitable; it may itself resolve to an awaitable (aiokafka's
# send() returns a future resolved on the broker's ack), which the relay then awaits too.
Send = Callable[[str, str, bytes, dict[str, str] | None], Awaitable[Any]]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Row:
    id: int
    topic: str
    key: str
    message_id: str
    payload: bytes
    headers: dict[str, str] | None
    attempts: int


_OK = object()  # a row's publish outcome: _OK, the exception it failed with, or None (not attempted)


class OutboxRelay:
    """One per service process; only the lease holder publishes."""

    def __init__(
        self,
        engine_or_store: AsyncEngine | Store,
        service: str,
        send: Send,
        *,
        poll_s: float = 1.0,
        max_attempts: int = 5,
        holder_id: str | None = None,
        lease_s: float = 10.0,
        batch_size: int = 500,
        publish_timeout_s: float | None = None,
    ) -> None:
        # The relay's own transactions go straight to the engine: they must not fire on_commit (self-wake).
        self.engine = engine_or_store.engine if isinstance(engine_or_store, Store) else engine_or_store
        self.service, self.send = service, send
        self.poll_s, self.max_attempts = poll_s, max_attempts
        self.lease_s, self.batch_size = lease_s, batch_size
        self.holder_id = holder_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # Bounded well inside the lease, so a stuck broker cannot outlive our claim on the rows.
        self.publish_timeout_s = publish_timeout_s if publish_timeout_s is not None else lease_s / 2
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._pass_lock = asyncio.Lock()  # run() and drain() never publish the same rows at once
        self._published: list[int] = []  # published rows not deleted yet: the next claim deletes them
        self._renew_at = 0.0  # monotonic time at which the lease is renewed (half its life)
        self._delete_at = 0.0  # monotonic time by which the published rows are deleted

    def wake(self) -> None:
        """Publish soon: something was committed (Store.on_commit hook)."""
        self._wake.set()

    def stop(self) -> None:
        """Make run() return after its current pass."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Publish until stop(): on every wake, and every poll_s as a fallback."""
        try:
            while not self._stop.is_set():
                more = failed = False
                try:
                    _published, read, failed = await self._pass()
                    more = read >= self.batch_size and not failed
                except Exception as exc:  # the relay must outlive database outages
                    if not is_transient(exc):
                        log.exception("outbox relay pass failed", service=self.service)
                    else:
                        log.warning(
                            "outbox relay pass hit a transient error", service=self.service, error=str(exc)
                        )
                if failed:
                    # Commits keep waking us; back off anyway so retries are spread over time, not burnt.
                    await self._sleep(self.poll_s)
                elif not more:
                    await self._wait(self.poll_s)
        finally:
            await self._release()

    async def drain(self) -> int:
        """Publish everything pending now (each row attempted at most once); returns rows published."""
        total = 0
        while True:
            published, read, failed = await self._pass()
            total += published
            if failed or published == 0 or read < self.batch_size:
                break
        if self._stop.is_set():  # shutting down: let a successor take over at once
            await self._release()
        else:
            await self._delete_published()
        return total

    async def _delete_published(self) -> None:
        async with self._pass_lock, self.engine.begin() as conn:
            if self._published:
                await conn.execute(delete(outbox).where(outbox.c.id.in_(self._published)))
                self._published = []

    async def _wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        # Cleared before the next pass reads rows, so a commit during that pass still wakes us again.
        self._wake.clear()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _pass(self) -> tuple[int, int, bool]:
        """One claim-read-publish-record round: (rows published, rows read, any failed)."""
        async with self._pass_lock:
            rows = await self._claim_and_read()
            if not rows:
                return 0, 0, False
            outcomes = await self._publish(rows)
            published = [r.id for r, o in zip(rows, outcomes, strict=True) if o is _OK]
            failed = [(r, o) for r, o in zip(rows, outcomes, strict=True) if isinstance(o, BaseException)]
            await self._record(published, failed)
            return len(published), len(rows), bool(failed)

    async def _claim_and_read(self) -> list[_Row]:
        # Claim and read in one short transaction; publishing happens outside any transaction.
        # Most passes only read, without a write lock (SQLite has one writer, and the services'
        # batch transactions should not queue behind the relays): the lease is renewed at half its
        # life, and published rows are deleted in bulk about once per poll interval, being left out
        # of the reads until then.
        now = time.monotonic()
        writes = now >= self._renew_at or len(self._published) >= self.batch_size or (
            bool(self._published) and now >= self._delete_at)
        engine = self.engine if writes else read_only(self.engine)
        try:
            async with engine.begin() as conn:
                if writes:
                    if self._published:  # rows the previous pass published: gone before anything is read
                        await conn.execute(delete(outbox).where(outbox.c.id.in_(self._published)))
                    if not await claim_lease(conn, self.service, self.holder_id, self.lease_s):
                        self._published = []
                        return []
                    self._renew_at = time.monotonic() + self.lease_s / 2
                    self._published = []
                blocked_keys = select(outbox.c.key).where(
                    outbox.c.service == self.service, outbox.c.failed_at.is_not(None)
                )
                result = await conn.execute(
                    select(
                        outbox.c.id,
                        outbox.c.topic,
                        outbox.c.key,
                        outbox.c.message_id,
                        outbox.c.payload,
                        outbox.c.headers,
                        outbox.c.attempts,
                    )
                    .where(
                        outbox.c.service == self.service,
                        outbox.c.failed_at.is_(None),
                        outbox.c.key.not_in(blocked_keys),
                        outbox.c.id.not_in(self._published),  # published, deleted later
                    )
                    .order_by(outbox.c.id)
                    .limit(self.batch_size)
                )
                return [
                    _Row(r.id, r.topic, r.key, r.message_id, r.payload.encode("utf-8"), r.headers, r.attempts)
                    for r in result
                ]
        except IntegrityError:
            return []  # another relay inserted the lease row first

    async def _publish(self, rows: list[_Row]) -> list[object]:
        """Hand every row to send() in id order, then await the acks in the same order."""
        outcomes: list[object] = [None] * len(rows)
        acks: list[tuple[int, Awaitable[Any]]] = []
        stuck: set[str] = set()  # keys whose earlier row failed in this pass: later rows wait
        deadline = asyncio.get_running_loop().time() + self.publish_timeout_s
        for i, row in enumerate(rows):
            if row.key in stuck:
                continue
            try:
                async with asyncio.timeout_at(deadline):
                    result = await self.send(row.topic, row.key, row.payload, row.headers)
            except Exception as exc:  # noqa: BLE001 - any failure of the transport counts as one failed attempt
                outcomes[i] = exc
                stuck.add(row.key)
                continue
            if inspect.isawaitable(result):
                acks.append((i, result))
            else:
                outcomes[i] = _OK
        for i, ack in acks:
            try:
                async with asyncio.timeout_at(deadline):
                    await ack
                outcomes[i] = _OK
            except Exception as exc:  # noqa: BLE001 - a rejected or timed-out ack is a failed attempt of that row
                outcomes[i] = exc
        return outcomes

    async def _record(self, published: list[int], failed: list[tuple[_Row, object]]) -> None:
        # Deleting the published rows is folded into a later pass's claim (see _claim_and_read).
        if published and not self._published:
            self._delete_at = time.monotonic() + self.poll_s
        self._published += published
        if not failed:
            return
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            for row, exc in failed:
                give_up = row.attempts + 1 >= self.max_attempts
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(
                        # Only the lease holder touches these rows, so the attempts it read are current.
                        attempts=row.attempts + 1,
                        last_error=f"{type(exc).__name__}: {exc}"[:2000],
                        failed_at=now if give_up else None,
                    )
                )
                if give_up:
                    log.error(
                        "outbox row failed permanently; its key's later rows wait",
                        service=self.service,
                        message_id=row.message_id,
                        topic=row.topic,
                        key=row.key,
                        error=str(exc),
                    )
                else:
                    log.warning(
                        "outbox publish failed; will retry",
                        service=self.service,
                        message_id=row.message_id,
                        attempt=row.attempts + 1,
                        error=str(exc),
                    )

    async def _release(self) -> None:
        try:
            async with self.engine.begin() as conn:
                if self._published:
                    await conn.execute(delete(outbox).where(outbox.c.id.in_(self._published)))
                    self._published = []
                await release_lease(conn, self.service, self.holder_id)
            self._renew_at = 0.0
        except Exception as exc:  # noqa: BLE001 - best effort: the lease expires by itself anyway
            log.warning("could not release the relay lease", service=self.service, error=str(exc))
