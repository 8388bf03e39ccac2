"""Audit: every published decision, refusal, execution and dead letter into the hash-chained log."""

from __future__ import annotations

import base64
from datetime import datetime

from contracts.decisions import RequestDecided
from contracts.executions import MutationExecuted
from services.cache.decisions import DecisionCache
from services.common.consumer import Handle
from services.common.inbound import Inbound
from services.common.service import Runtime
from services.store.uow import AuditEntry, Tx


def entry(item: Inbound, now: datetime) -> AuditEntry:
    """The audit entry of one record; an unreadable record is kept raw rather than dead-lettered."""
    msg, record = item.message, item.record
    if msg is None or item.code is not None:
        raw = record.value or b""
        return AuditEntry(
            message_id=item.dedupe_id, message_type="UnreadableRecord", topic=record.topic,
            request_id=None, state_id=item.key or None, occurred_at=now,
            payload={"code": item.code, "reason": item.reason, "raw": base64.b64encode(raw[:65536]).decode(),
                     "source": f"{record.topic}/{record.partition}/{record.offset}"},
        )
    return AuditEntry(
        message_id=msg.message_id, message_type=msg.message_type, topic=record.topic,
        request_id=getattr(msg, "request_id", None), state_id=getattr(msg, "state_id", None),
        occurred_at=msg.occurred_at, payload=msg.wire(),
    )


def make_handle(runtime: Runtime) -> Handle:
    """The audit batch handler: one chain append per batch, then refresh the recent-decision cache."""
    settings = runtime.settings
    cache = DecisionCache(runtime.redis, ttl_s=settings.decision_cache_ttl_s,
                          prefix=f"mutator:{settings.topic_prefix}")

    async def handle(tx: Tx, items: list[Inbound], now: datetime) -> None:
        await tx.append_audit([entry(i, now) for i in items])
        # The events are already published facts, so caching them before our commit is safe.
        messages = [i.message for i in items]
        latest: dict[str, RequestDecided] = {}  # only each request's newest decision of the batch
        for m in messages:
            if isinstance(m, RequestDecided) and m.sequence >= getattr(latest.get(m.request_id), "sequence", -1):
                latest[m.request_id] = m
        await cache.record_many(
            [(m.request_id, m.sequence, {"sequence": m.sequence, "status": m.status, "revision": m.revision,
                                         "code": m.decision.code, "category": m.decision.category,
                                         "reason": m.decision.reason})
             for m in latest.values()],
            [(m.state_id, m.resulting_version, {"version": m.resulting_version, "request_id": m.request_id})
             for m in messages if isinstance(m, MutationExecuted)],
        )

    return handle
