"""The tamper-evident audit log: a sha256 hash chain whose head advances by compare-and-set."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.domain.hashing import canonical_json
from services.store.errors import ConcurrencyConflict
from services.store.tables import GENESIS_HASH, audit_chain, audit_log

HEAD_ID = 1
_VERIFY_PAGE = 1000


@dataclass(frozen=True)
class AuditEntry:
    """One published message to record in the audit log."""

    message_id: str
    message_type: str
    topic: str
    request_id: str | None
    state_id: str | None
    occurred_at: datetime
    payload: dict[str, Any]


def entry_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """sha256 hex of the previous hash followed by the canonical JSON of the entry's content."""
    content = {
        "seq": row["seq"],
        "message_id": row["message_id"],
        "message_type": row["message_type"],
        "topic": row["topic"],
        "request_id": row["request_id"],
        "state_id": row["state_id"],
        "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
        "recorded_at": row["recorded_at"].astimezone(UTC).isoformat(),
        "payload": row["payload"],
    }
    return hashlib.sha256(prev_hash.encode() + canonical_json(content)).hexdigest()


async def append_entries(conn: AsyncConnection, entries: list[AuditEntry]) -> int:
    """Append the entries whose message_id is not logged yet; returns how many were appended."""
    if not entries:
        return 0
    last_seq, last_hash = await _lock_head(conn)
    # Checked after taking the head lock, so a concurrent appender's committed rows are visible.
    ids = list({e.message_id for e in entries})
    logged = set(
        (await conn.scalars(select(audit_log.c.message_id).where(audit_log.c.message_id.in_(ids)))).all()
    )
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    seq, prev = last_seq, last_hash
    for e in entries:
        if e.message_id in logged:
            continue
        logged.add(e.message_id)
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "message_id": e.message_id,
            "message_type": e.message_type,
            "topic": e.topic,
            "request_id": e.request_id,
            "state_id": e.state_id,
            "occurred_at": e.occurred_at,
            "recorded_at": now,
            # Normalised through JSON so the hashed payload is exactly what the database returns.
            "payload": json.loads(canonical_json(e.payload)),
            "prev_hash": prev,
        }
        row["hash"] = prev = entry_hash(row["prev_hash"], row)
        rows.append(row)
    if not rows:
        return 0
    await conn.execute(insert(audit_log), rows)
    moved = await conn.execute(
        update(audit_chain)
        .where(
            audit_chain.c.id == HEAD_ID,
            audit_chain.c.last_seq == last_seq,
            audit_chain.c.last_hash == last_hash,
        )
        .values(last_seq=seq, last_hash=prev)
    )
    if moved.rowcount != 1:
        raise ConcurrencyConflict("audit chain head moved")
    return len(rows)


async def _lock_head(conn: AsyncConnection) -> tuple[int, str]:
    """The chain head, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite is already serialised)."""
    query = select(audit_chain.c.last_seq, audit_chain.c.last_hash).where(audit_chain.c.id == HEAD_ID)
    head = (await conn.execute(query.with_for_update())).first()
    if head is None:
        # The migration seeds the head; this covers a database whose head row was removed by hand.
        try:
            await conn.execute(insert(audit_chain).values(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH))
        except IntegrityError as exc:
            raise ConcurrencyConflict("audit chain head created concurrently") from exc
        return 0, GENESIS_HASH
    return int(head.last_seq), str(head.last_hash)


async def verify_audit_chain(engine: AsyncEngine) -> tuple[bool, int]:
    """Walk the chain up to its head: (True, entries verified) or (False, seq of the first bad entry)."""
    async with engine.connect() as conn:
        head = (await conn.execute(select(audit_chain).where(audit_chain.c.id == HEAD_ID))).first()
    if head is None:
        return True, 0
    expected_seq, prev = 0, GENESIS_HASH
    # Short transactions page by page: a long read would hold SQLite's write lock (BEGIN IMMEDIATE).
    while expected_seq < head.last_seq:
        async with engine.connect() as conn:
            page = (
                (
                    await conn.execute(
                        select(audit_log)
                        .where(audit_log.c.seq > expected_seq, audit_log.c.seq <= head.last_seq)
                        .order_by(audit_log.c.seq)
                        .limit(_VERIFY_PAGE)
                    )
                )
                .mappings()
                .all()
            )
        if not page:
            return False, expected_seq + 1
        for row in page:
            expected_seq += 1
            if (
                row["seq"] != expected_seq
                or row["prev_hash"] != prev
                or entry_hash(prev, dict(row)) != row["hash"]
            ):
                return False, expected_seq
            prev = row["hash"]
    if prev != head.last_hash:
        return False, int(head.last_seq)
    return True, int(head.last_seq)
