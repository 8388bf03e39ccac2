"""Unit of work: one SQL transaction per handler call, with the repository operations it needs.

A handler takes a whole poll's batch in one transaction, so the per-message writes are batched
too: new rows (requests, states, history, processed messages, outbox) are buffered and written
as multi-row inserts at `flush`, just before commit; reads of many requests and states are one
query each (`prefetch`). Compare-and-set updates of existing rows stay one statement each, since
each must see its own row count. A duplicate among the buffered inserts fails at flush with
ConcurrencyConflict, and the caller retries the whole transaction — as it would have row by row.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.domain.model import Change, MutationRequest, StateDocument
from services.store.audit import AuditEntry, append_entries
from services.store.db import read_only as read_only_engine
from services.store.errors import ConcurrencyConflict
from services.store.queries import HistoryEntry, Queries
from services.store.rows import decision_row, request_from_row, request_row, state_from_row
from services.store.tables import (
    mutation_request,
    outbox,
    processed_message,
    request_decision,
    state_document,
    state_history,
)

__all__ = ["AuditEntry", "HistoryEntry", "Store", "Tx"]

log = logging.getLogger(__name__)

# Buffered inserts are written in this order (history rows refer to their state by id only).
INSERT_ORDER = (state_document, mutation_request, request_decision, state_history, processed_message, outbox)


class Store:
    """Opens transactions on one engine and tells listeners (the outbox relay) after each commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.on_commit: list[Callable[[], None]] = []

    @asynccontextmanager
    async def begin(self, *, read_only: bool = False) -> AsyncIterator[Tx]:
        """One transaction: commits when the block exits normally, rolls back when it raises.

        `read_only` transactions must not write; on SQLite they then take no write lock.
        """
        async with (read_only_engine(self.engine) if read_only else self.engine).begin() as conn:
            tx = Tx(conn)
            yield tx
            await tx.flush()
        for hook in list(self.on_commit):
            try:
                hook()
            except Exception:  # the commit stands; a broken listener must not make it look failed
                log.exception("on_commit hook failed")


class Tx(Queries):
    """Repository operations, all inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # New rows by table, keyed by primary key (insertion order kept), written at flush.
        self._inserts: dict[Table, dict[Any, dict[str, Any]]] = {t: {} for t in INSERT_ORDER}
        # What this transaction read or wrote; prefetch() fills it for a whole batch in one query.
        self._requests: dict[str, MutationRequest | None] = {}
        self._states: dict[str, StateDocument | None] = {}

    async def flush(self) -> None:
        """Write the buffered new rows as multi-row inserts (Store.begin calls it before commit)."""
        for table in INSERT_ORDER:
            rows, self._inserts[table] = list(self._inserts[table].values()), {}
            if not rows:
                continue
            try:
                await self.conn.execute(insert(table), rows)
            except IntegrityError as exc:
                # Someone else (a rebalance, another instance) wrote one of these first: retry sees it.
                raise ConcurrencyConflict(f"a row of {table.name} was written concurrently") from exc

    async def prefetch(self, *, request_ids: Iterable[str] = (), state_ids: Iterable[str] = ()) -> None:
        """Load many requests and states in two queries; later get_request/get_state calls hit memory."""
        wanted = [i for i in set(request_ids) if i not in self._requests]
        if wanted:
            self._requests.update(dict.fromkeys(wanted))
            query = select(mutation_request.c.body, mutation_request.c.revision).where(
                mutation_request.c.request_id.in_(wanted))
            for row in await self.conn.execute(query):
                request = request_from_row(row.body, row.revision)
                self._requests[request.request_id] = request
        wanted = [i for i in set(state_ids) if i not in self._states]
        if wanted:
            self._states.update(dict.fromkeys(wanted))
            for row in await self.conn.execute(select(state_document).where(state_document.c.state_id.in_(wanted))):
                self._states[row.state_id] = state_from_row(row)

    # -- processed messages (idempotent consumption) --

    async def processed(self, group: str, message_ids: Iterable[str]) -> set[str]:
        """Which of `message_ids` this consumer group has already handled (this transaction included)."""
        ids = set(message_ids)
        if not ids:
            return set()
        done = {m for (g, m) in self._inserts[processed_message] if g == group and m in ids}
        rows = await self.conn.scalars(
            select(processed_message.c.message_id).where(
                processed_message.c.consumer_group == group, processed_message.c.message_id.in_(list(ids))
            )
        )
        return done | set(rows.all())

    async def mark_processed(self, group: str, message_id: str) -> None:
        """Record that this consumer group handled `message_id` (a concurrent duplicate fails at flush)."""
        self._inserts[processed_message][(group, message_id)] = {
            "consumer_group": group, "message_id": message_id, "processed_at": datetime.now(UTC)}

    # -- requests --

    async def get_request(self, request_id: str) -> MutationRequest | None:
        """The request, or None."""
        await self.prefetch(request_ids=[request_id])
        return self._requests[request_id]

    async def save_request(self, request: MutationRequest, *, new: bool) -> MutationRequest:
        """Insert (revision 1) or compare-and-set on `request.revision`; returns it with the stored revision."""
        key, cached = request.request_id, self._requests.get(request.request_id)
        saved = request.model_copy(update={"revision": 1 if new else request.revision + 1})
        if new:
            if cached is not None:
                raise ConcurrencyConflict(f"request {key} already exists")
        elif key in self._inserts[mutation_request]:  # created by this transaction, not written yet
            if cached is None or cached.revision != request.revision:
                raise ConcurrencyConflict(f"request {key} is no longer at revision {request.revision}")
        else:
            result = await self.conn.execute(
                update(mutation_request)
                .where(mutation_request.c.request_id == key, mutation_request.c.revision == request.revision)
                .values(**request_row(saved))
            )
            if result.rowcount != 1:
                raise ConcurrencyConflict(f"request {key} is no longer at revision {request.revision}")
        if new or key in self._inserts[mutation_request]:
            self._inserts[mutation_request][key] = request_row(saved)
        logged = 0 if new else len(cached.decisions) if cached is not None else await self._logged(key)
        for sequence in range(logged, len(saved.decisions)):
            self._inserts[request_decision][(key, sequence)] = decision_row(key, sequence, saved.decisions[sequence])
        self._requests[key] = saved
        return saved

    async def _logged(self, request_id: str) -> int:
        """How many decisions of a request not read by this transaction are already stored."""
        return int(await self.conn.scalar(
            select(func.count()).where(request_decision.c.request_id == request_id)) or 0)

    # -- states --

    async def get_state(self, state_id: str) -> StateDocument | None:
        """The current document, or None if it was never written."""
        await self.prefetch(state_ids=[state_id])
        return self._states[state_id]

    async def save_state(
        self, state: StateDocument, *, expected_version: int, request_id: str, changes: list[Change]
    ) -> None:
        """Write `state` if the stored version is still `expected_version` (0: absent), and its history row."""
        if state.version <= expected_version:
            raise ValueError(f"new version {state.version} must exceed expected version {expected_version}")
        key, now = state.state_id, datetime.now(UTC)
        await self.prefetch(state_ids=[key])
        current = self._states[key]
        if (current.version if current else 0) != expected_version:
            raise ConcurrencyConflict(f"state {key} is no longer at version {expected_version}")
        row = {"state_id": key, "state_type": state.state_type, "version": state.version, "data": state.data,
               "updated_at": now}
        if expected_version == 0 or key in self._inserts[state_document]:
            self._inserts[state_document][key] = row  # new in this transaction: one insert at flush
        else:
            result = await self.conn.execute(
                update(state_document)
                .where(state_document.c.state_id == key, state_document.c.version == expected_version)
                .values(**row)
            )
            if result.rowcount != 1:
                raise ConcurrencyConflict(f"state {key} is no longer at version {expected_version}")
        self._states[key] = state
        self._inserts[state_history][(key, state.version)] = {
            "state_id": key, "version": state.version, "request_id": request_id,
            "changes": [c.model_dump(mode="json") for c in changes], "document": state.model_dump(mode="json"),
            "recorded_at": now,
        }

    # -- outbox and audit --

    async def add_outbox(
        self,
        service: str,
        topic: str,
        key: str,
        message_id: str,
        message_type: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue one message for this service's relay (written at flush, in call order)."""
        self._inserts[outbox][message_id] = {
            "service": service, "topic": topic, "key": key, "message_id": message_id,
            "message_type": message_type, "payload": payload.decode("utf-8"), "headers": headers,
            "created_at": datetime.now(UTC), "attempts": 0,
        }

    async def append_audit(self, entries: list[AuditEntry]) -> int:
        """Append entries not logged yet to the hash chain; returns how many were appended."""
        return await append_entries(self.conn, entries)
