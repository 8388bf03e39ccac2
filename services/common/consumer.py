"""The batch consumer every service uses: parse guard, dedupe, one transaction, bounded retry.

One poll's batch is handled in one SQL transaction (processed messages + requests + states +
outbox). A transient infrastructure error is retried with backoff, then re-raised so the
subscriber nacks and the partition waits. Any other error falls back to one message at a time,
so only the message that cannot be handled is dead-lettered and the rest go on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime

import stamina
import structlog

from contracts.envelope import Envelope
from services.common.inbound import Inbound, Record, parse, rejected
from services.common.settings import Settings
from services.store.db import is_transient
from services.store.uow import Store, Tx

Handle = Callable[[Tx, list[Inbound], datetime], Awaitable[None]]
Guard = Callable[[list[Inbound]], AbstractAsyncContextManager[None]]
log = structlog.get_logger(__name__)
MAX_KEY = 200


async def emit(tx: Tx, service: str, settings: Settings, messages: Iterable[Envelope]) -> None:
    """Write outgoing messages to this service's outbox, in the caller's transaction."""
    for m in messages:
        key = getattr(m, "state_id", None) or getattr(m, "source_key", None) or ""
        # A dead letter's source key is whatever the producer sent; the outbox key column holds 200.
        key = key[:MAX_KEY]
        await tx.add_outbox(service, settings.topic(m.topic), key, m.message_id, m.message_type, m.to_json())


async def prefetch(tx: Tx, items: list[Inbound], *, states: bool = True) -> None:
    """Load the batch's requests (and states) in one query each before handling it message by message."""
    messages = [i.message for i in items if i.message is not None]
    await tx.prefetch(request_ids=[m.request_id for m in messages if hasattr(m, "request_id")],
                      state_ids=[m.state_id for m in messages if states and hasattr(m, "state_id")])


class BatchConsumer:
    """Handles one poll's records for one consumer group."""

    def __init__(self, *, service: str, group: str, store: Store, settings: Settings,
                 allowed: dict[str, dict[str, type[Envelope]]], handle: Handle, guard: Guard | None = None,
                 dead_letter_invalid: bool = True, dedupe_by_position: bool = False,
                 track_processed: bool = True) -> None:
        self.service, self.group, self.store, self.settings = service, group, store, settings
        self._allowed = {settings.topic(name): models for name, models in allowed.items()}
        self._handle = handle
        # Held around the whole transaction, commit included (the execution service's state locks).
        self._guard: Guard = guard or (lambda _items: nullcontext())
        # The audit service records unreadable records itself and never dead-letters.
        self._dead_letter_invalid = dead_letter_invalid
        # Off only where the handler's own writes are idempotent by message_id (the audit log).
        self._track_processed = track_processed
        self._id: Callable[[Inbound], str] = (
            (lambda i: i.position_id) if dedupe_by_position else (lambda i: i.dedupe_id))

    async def consume(self, records: Sequence[Record]) -> None:
        """Handle a batch; raises only when infrastructure stays down (the subscriber then nacks)."""
        items = [parse(r, self._allowed.get(r.topic, {})) for r in records]
        try:
            await self._retrying(items)
        except Exception as exc:  # the one place that decides what an unexpected error means
            if is_transient(exc):
                raise
            if len(items) > 1:
                for item in items:
                    await self.consume_alone(item)
                return
            log.exception("message cannot be handled; dead-lettering it", service=self.service)
            await self._retrying([_as_failed(items[0], exc)])

    async def consume_alone(self, item: Inbound) -> None:
        """One message in its own transaction (the fallback path of a failed batch)."""
        try:
            await self._retrying([item])
        except Exception as exc:  # see consume(): a non-transient error is this message's fault
            if is_transient(exc):
                raise
            log.exception("message cannot be handled; dead-lettering it", service=self.service)
            await self._retrying([_as_failed(item, exc)])

    async def _retrying(self, items: list[Inbound]) -> None:
        async for attempt in stamina.retry_context(
            on=is_transient, attempts=self.settings.infra_retry_attempts,
            timeout=self.settings.infra_retry_timeout_s,
        ):
            with attempt:
                await self._transact(items)

    async def _transact(self, items: list[Inbound]) -> None:
        now = datetime.now(UTC)
        async with self._guard(items), self.store.begin() as tx:
            seen = await tx.processed(self.group, [self._id(i) for i in items]) if self._track_processed else set()
            fresh = []
            for item in items:  # redelivered, or the same message twice in one batch
                if self._id(item) not in seen:
                    seen.add(self._id(item))
                    fresh.append(item)
            if self._dead_letter_invalid:
                await emit(tx, self.service, self.settings, [rejected(i) for i in fresh if i.code is not None])
                valid = [i for i in fresh if i.code is None]
            else:
                valid = fresh
            if valid:
                await self._handle(tx, valid, now)
            if self._track_processed:
                for item in fresh:
                    await tx.mark_processed(self.group, self._id(item))


def _as_failed(item: Inbound, exc: Exception) -> Inbound:
    # Keeps the message, so its message_id is what gets recorded as processed.
    return replace(item, code="processing_error", reason=f"{type(exc).__name__}: {exc}"[:2000])
