"""The per-service relay lease: one active outbox relay per service, claimed by compare-and-set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.store.tables import relay_lease


async def claim_lease(conn: AsyncConnection, service: str, holder: str, ttl_s: float) -> bool:
    """Take or renew the lease; False while another holder's lease is live.

    A first claim inserts the row; a concurrent first claim then raises IntegrityError, which the
    caller treats as "not claimed" (on PostgreSQL that aborts the transaction, so it must roll back).
    """
    now = datetime.now(UTC)
    renewed = await conn.execute(
        update(relay_lease)
        .where(
            relay_lease.c.service == service,
            or_(relay_lease.c.holder == holder, relay_lease.c.expires_at < now),
        )
        .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s))
    )
    if renewed.rowcount == 1:
        return True
    exists = await conn.scalar(select(relay_lease.c.service).where(relay_lease.c.service == service))
    if exists is not None:
        return False
    await conn.execute(
        insert(relay_lease).values(service=service, holder=holder, expires_at=now + timedelta(seconds=ttl_s))
    )
    return True


async def release_lease(conn: AsyncConnection, service: str, holder: str) -> None:
    """Give the lease up now (if we hold it), so a successor need not wait for it to expire."""
    await conn.execute(
        update(relay_lease)
        .where(relay_lease.c.service == service, relay_lease.c.holder == holder)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
