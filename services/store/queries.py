"""Read-side queries of a transaction: listings, history and the approver directory table.

They may depend on rows this transaction wrote, so each first flushes the buffered writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.domain.model import Change, MutationRequest, StateDocument, Status
from services.store.rows import request_from_row
from services.store.tables import mutation_request, principal, state_history


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded version of a state document."""

    state_id: str
    version: int
    request_id: str
    changes: list[Change]
    document: StateDocument
    recorded_at: datetime



class Queries:
    """Mixed into Tx: `conn` is the transaction's connection, `flush` writes what is buffered."""

    conn: AsyncConnection

    async def flush(self) -> None:  # pragma: no cover - implemented by Tx
        raise NotImplementedError

    async def list_requests(
        self, state_id: str | None = None, status: Status | str | None = None, limit: int = 50
    ) -> list[MutationRequest]:
        """Requests, newest first, optionally of one state and/or status."""
        await self.flush()
        query = select(mutation_request.c.body, mutation_request.c.revision)
        if state_id is not None:
            query = query.where(mutation_request.c.state_id == state_id)
        if status is not None:
            query = query.where(mutation_request.c.status == str(status))
        query = query.order_by(mutation_request.c.created_at.desc(), mutation_request.c.request_id).limit(
            limit
        )
        return [request_from_row(r.body, r.revision) for r in await self.conn.execute(query)]

    async def list_expiring(self, before: datetime, limit: int = 100) -> list[MutationRequest]:
        """Pending requests whose deadline is at or before `before`, oldest deadline first."""
        await self.flush()
        query = (
            select(mutation_request.c.body, mutation_request.c.revision)
            .where(mutation_request.c.expires_at <= before, mutation_request.c.status == Status.pending.value)
            .order_by(mutation_request.c.expires_at, mutation_request.c.request_id)
            .limit(limit)
        )
        return [request_from_row(r.body, r.revision) for r in await self.conn.execute(query)]

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

    async def changed_paths_since(self, state_id: str, version: int) -> list[str]:
        """Paths changed by the versions after `version`, in order, each once."""
        await self.flush()
        rows = await self.conn.scalars(
            select(state_history.c.changes)
            .where(state_history.c.state_id == state_id, state_history.c.version > version)
            .order_by(state_history.c.version)
        )
        paths = [change["path"] for changes in rows for change in changes]
        return list(dict.fromkeys(paths))

    async def history(self, state_id: str, limit: int = 50) -> list[HistoryEntry]:
        """The latest `limit` versions of a state, newest first."""
        await self.flush()
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
