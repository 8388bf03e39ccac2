"""Unit of work: one SQL transaction per handler call, with the repository operations it needs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.domain.model import Change, MutationRequest, StateDocument, Status
from services.store.audit import AuditEntry, append_entries
from services.store.errors import ConcurrencyConflict
from services.store.tables import (
    mutation_request,
    outbox,
    principal,
    processed_message,
    state_document,
    state_history,
)

__all__ = ["AuditEntry", "HistoryEntry", "Store", "Tx"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded version of a state document."""

    state_id: str
    version: int
    request_id: str
    changes: list[Change]
    document: StateDocument
    recorded_at: datetime


class Store:
    """Opens transactions on one engine and tells listeners (the outbox relay) after each commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.on_commit: list[Callable[[], None]] = []

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Tx]:
        """One transaction: commits when the block exits normally, rolls back when it raises."""
        async with self.engine.begin() as conn:
            tx = Tx(conn)
            yield tx
            await tx.flush()
        for hook in list(self.on_commit):
            try:
                hook()
            except Exception:  # the commit stands; a broken listener must not make it look failed
                log.exception("on_commit hook failed")


class Tx:
    """Repository operations, all inside one transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # Row-per-message writes are buffered and sent as one multi-row insert at commit (flush):
        # a batch of 500 messages costs a handful of statements, not thousands.
        self._processed: dict[str, list[str]] = {}
        self._outbox: list[dict[str, Any]] = []
        # What this transaction read or wrote; prefetch() fills it for a whole batch in one query.
        self._requests: dict[str, MutationRequest | None] = {}
        self._states: dict[str, StateDocument | None] = {}

    async def flush(self) -> None:
        """Write the buffered processed-message and outbox rows (Store.begin calls it before commit)."""
        processed, self._processed = self._processed, {}
        outbox_rows, self._outbox = self._outbox, []
        now = datetime.now(UTC)
        rows = [{"consumer_group": g, "message_id": m, "processed_at": now} for g, ids in processed.items() for m in ids]
        if rows:
            try:
                await self.conn.execute(insert(processed_message), rows)
            except IntegrityError as exc:
                # Another consumer of the group (a rebalance) handled one concurrently: a retry sees it as done.
                raise ConcurrencyConflict("a message of this batch was processed concurrently") from exc
        if outbox_rows:
            await self.conn.execute(insert(outbox), outbox_rows)

    async def prefetch(self, *, request_ids: Iterable[str] = (), state_ids: Iterable[str] = ()) -> None:
        """Load many requests and states in two queries; later get_request/get_state calls hit memory."""
        wanted = [i for i in set(request_ids) if i not in self._requests]
        if wanted:
            self._requests.update(dict.fromkeys(wanted))
            query = select(mutation_request.c.body, mutation_request.c.revision).where(
                mutation_request.c.request_id.in_(wanted))
            for row in await self.conn.execute(query):
                request = _request(row.body, row.revision)
                self._requests[request.request_id] = request
        wanted = [i for i in set(state_ids) if i not in self._states]
        if wanted:
            self._states.update(dict.fromkeys(wanted))
            for row in await self.conn.execute(select(state_document).where(state_document.c.state_id.in_(wanted))):
                self._states[row.state_id] = _state(row)

    # -- processed messages (idempotent consumption) --

    async def processed(self, group: str, message_ids: Iterable[str]) -> set[str]:
        """Which of `message_ids` this consumer group has already handled (this transaction included)."""
        ids = set(message_ids)
        if not ids:
            return set()
        done = ids & set(self._processed.get(group, ()))
        rows = await self.conn.scalars(
            select(processed_message.c.message_id).where(
                processed_message.c.consumer_group == group, processed_message.c.message_id.in_(list(ids))
            )
        )
        return done | set(rows.all())

    async def mark_processed(self, group: str, message_id: str) -> None:
        """Record that this consumer group handled `message_id` (written at flush; a concurrent
        duplicate then raises ConcurrencyConflict)."""
        self._processed.setdefault(group, []).append(message_id)

    # -- requests --

    async def get_request(self, request_id: str) -> MutationRequest | None:
        """The request, or None."""
        await self.prefetch(request_ids=[request_id])
        return self._requests[request_id]

    async def save_request(self, request: MutationRequest, *, new: bool) -> MutationRequest:
        """Insert (revision 1) or compare-and-set on `request.revision`; returns it with the stored revision."""
        if new:
            saved = request.model_copy(update={"revision": 1})
            try:
                await self.conn.execute(insert(mutation_request).values(**_request_row(saved)))
            except IntegrityError as exc:
                raise ConcurrencyConflict(f"request {request.request_id} already exists") from exc
            self._requests[saved.request_id] = saved
            return saved
        saved = request.model_copy(update={"revision": request.revision + 1})
        result = await self.conn.execute(
            update(mutation_request)
            .where(
                mutation_request.c.request_id == request.request_id,
                mutation_request.c.revision == request.revision,
            )
            .values(**_request_row(saved))
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict(
                f"request {request.request_id} is no longer at revision {request.revision}"
            )
        self._requests[saved.request_id] = saved
        return saved

    async def list_requests(
        self, state_id: str | None = None, status: Status | str | None = None, limit: int = 50
    ) -> list[MutationRequest]:
        """Requests, newest first, optionally of one state and/or status."""
        query = select(mutation_request.c.body, mutation_request.c.revision)
        if state_id is not None:
            query = query.where(mutation_request.c.state_id == state_id)
        if status is not None:
            query = query.where(mutation_request.c.status == str(status))
        query = query.order_by(mutation_request.c.created_at.desc(), mutation_request.c.request_id).limit(
            limit
        )
        return [_request(r.body, r.revision) for r in await self.conn.execute(query)]

    async def list_expiring(self, before: datetime, limit: int = 100) -> list[MutationRequest]:
        """Pending requests whose deadline is at or before `before`, oldest deadline first."""
        query = (
            select(mutation_request.c.body, mutation_request.c.revision)
            .where(mutation_request.c.expires_at <= before, mutation_request.c.status == Status.pending.value)
            .order_by(mutation_request.c.expires_at, mutation_request.c.request_id)
            .limit(limit)
        )
        return [_request(r.body, r.revision) for r in await self.conn.execute(query)]

    # -- approver directory (the SQL side; it overrides the directory file) --

    async def get_principal(self, principal_id: str) -> dict[str, Any] | None:
        """The principal row as a directory record dict (id, name, roles, groups, active, public_keys)."""
        row = (await self.conn.execute(select(principal).where(principal.c.principal_id == principal_id))).first()
        if row is None:
            return None
        return {"id": row.principal_id, "name": row.name, "roles": row.roles, "groups": row.groups,
                "active": row.active, "public_keys": row.public_keys}

    async def put_principal(self, record: dict[str, Any]) -> None:
        """Insert or replace a principal (record shaped like get_principal's result)."""
        await self.conn.execute(principal.delete().where(principal.c.principal_id == record["id"]))
        await self.conn.execute(insert(principal).values(
            principal_id=record["id"], name=record.get("name"), roles=record.get("roles", []),
            groups=record.get("groups", []), active=record.get("active", True),
            public_keys=record.get("public_keys", {}), updated_at=datetime.now(UTC)))

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
        now = datetime.now(UTC)
        values = {
            "state_type": state.state_type,
            "version": state.version,
            "data": state.data,
            "updated_at": now,
        }
        if expected_version == 0:
            try:
                await self.conn.execute(insert(state_document).values(state_id=state.state_id, **values))
            except IntegrityError as exc:
                raise ConcurrencyConflict(f"state {state.state_id} was created concurrently") from exc
        else:
            result = await self.conn.execute(
                update(state_document)
                .where(
                    state_document.c.state_id == state.state_id, state_document.c.version == expected_version
                )
                .values(**values)
            )
            if result.rowcount != 1:
                raise ConcurrencyConflict(
                    f"state {state.state_id} is no longer at version {expected_version}"
                )
        self._states[state.state_id] = state
        await self.conn.execute(
            insert(state_history).values(
                state_id=state.state_id,
                version=state.version,
                request_id=request_id,
                changes=[c.model_dump(mode="json") for c in changes],
                document=state.model_dump(mode="json"),
                recorded_at=now,
            )
        )

    async def changed_paths_since(self, state_id: str, version: int) -> list[str]:
        """Paths changed by the versions after `version`, in order, each once."""
        rows = await self.conn.scalars(
            select(state_history.c.changes)
            .where(state_history.c.state_id == state_id, state_history.c.version > version)
            .order_by(state_history.c.version)
        )
        paths = [change["path"] for changes in rows for change in changes]
        return list(dict.fromkeys(paths))

    async def history(self, state_id: str, limit: int = 50) -> list[HistoryEntry]:
        """The latest `limit` versions of a state, newest first."""
        rows = await self.conn.execute(
            select(state_history)
            .where(state_history.c.state_id == state_id)
            .order_by(state_history.c.version.desc())
            .limit(limit)
        )
        return [
            HistoryEntry(
                state_id=r.state_id,
                version=r.version,
                request_id=r.request_id,
                changes=[Change.model_validate(c) for c in r.changes],
                document=StateDocument.model_validate(r.document),
                recorded_at=r.recorded_at,
            )
            for r in rows
        ]

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
        self._outbox.append({
            "service": service, "topic": topic, "key": key, "message_id": message_id,
            "message_type": message_type, "payload": payload.decode("utf-8"), "headers": headers,
            "created_at": datetime.now(UTC), "attempts": 0,
        })

    async def append_audit(self, entries: list[AuditEntry]) -> int:
        """Append entries not logged yet to the hash chain; returns how many were appended."""
        return await append_entries(self.conn, entries)


def _request_row(request: MutationRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "state_id": request.state_id,
        "status": request.status.value,
        "pending_reason": None if request.pending_reason is None else request.pending_reason.value,
        "revision": request.revision,
        # The sweeper's index: the earliest of the request's and its open step's deadlines.
        "expires_at": request.deadline,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "body": request.model_dump(mode="json"),
    }


def _state(row: Any) -> StateDocument:
    return StateDocument(state_id=row.state_id, state_type=row.state_type, version=row.version, data=row.data)


def _request(body: dict[str, Any], revision: int) -> MutationRequest:
    # The revision column is the compare-and-set authority; the body's copy follows it.
    return MutationRequest.model_validate({**body, "revision": revision})
