"""BatchConsumer against real SQLite and PostgreSQL: dedupe, one transaction, dead letters, retry, fallback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import stamina
from sqlalchemy import select

from contracts import topics
from contracts.catalog import messages_for
from contracts.commands import CancelRequested
from contracts.common import Actor
from services.cache.lock import LockBusy
from services.common.consumer import BatchConsumer, emit
from services.common.inbound import Inbound
from services.common.settings import Settings
from services.store.errors import ConcurrencyConflict
from services.store.tables import outbox, processed_message
from services.store.uow import Store, Tx

TOPIC = f"t.{topics.COMMANDS}"
DEAD_LETTER = f"t.{topics.DEAD_LETTER}"


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@pytest.fixture(autouse=True)
def no_backoff() -> Iterator[None]:
    """No backoff sleeps; the consumer's own bounded attempts (3) still apply."""
    with stamina.set_testing(True, attempts=100, cap=True):
        yield


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(topic_prefix="t.", infra_retry_attempts=3, infra_retry_timeout_s=5,
                    database_url=db_url, data_dir=tmp_path)


def command(state_id: str | None = None) -> CancelRequested:
    return CancelRequested(request_id=f"r-{uuid.uuid4().hex[:8]}", state_id=state_id or f"s-{uuid.uuid4().hex[:8]}",
                           actor=Actor(actor_id="alice"))


def record(msg: CancelRequested | bytes, offset: int, key: str | None = None) -> FakeRecord:
    if isinstance(msg, bytes):
        return FakeRecord(TOPIC, 0, offset, (key or "k").encode(), msg)
    return FakeRecord(TOPIC, 0, offset, (key if key is not None else msg.state_id).encode(), msg.to_json())


@dataclass
class Harness:
    """A consumer whose handler records each call and emits one echo per message it handled."""

    store: Store
    settings: Settings
    service: str = field(default_factory=lambda: f"svc-{uuid.uuid4().hex[:8]}")
    calls: list[list[Inbound]] = field(default_factory=list)
    fail: Any = None  # (items) -> Exception | None, raised inside the transaction
    commits: int = 0

    def __post_init__(self) -> None:
        self.store.on_commit.append(self._committed)

    def _committed(self) -> None:
        self.commits += 1

    async def handle(self, tx: Tx, items: list[Inbound], now: datetime) -> None:
        self.calls.append(items)
        await emit(tx, self.service, self.settings, [
            command(i.message.state_id).model_copy(update={"causation_id": i.message.message_id})
            for i in items if i.message is not None and i.code is None])
        if self.fail is not None and (exc := self.fail(items)) is not None:
            raise exc

    def consumer(self, **kw: Any) -> BatchConsumer:
        return BatchConsumer(service=self.service, group=self.service, store=self.store, settings=self.settings,
                             allowed={topics.COMMANDS: messages_for(topics.COMMANDS)}, handle=self.handle, **kw)

    async def processed(self) -> set[str]:
        async with self.store.engine.connect() as conn:
            rows = await conn.scalars(select(processed_message.c.message_id)
                                      .where(processed_message.c.consumer_group == self.service))
            return set(rows.all())

    async def outbox(self) -> list[Any]:
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(select(outbox).where(outbox.c.service == self.service).order_by(outbox.c.id))
            return list(rows)

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = [r for r in await self.outbox() if r.message_type == "MessageRejected"]
        assert all(r.topic == DEAD_LETTER for r in rows)
        return [json.loads(r.payload) for r in rows]

    async def echoed(self) -> list[str]:
        """causation ids of the echoes the handler emitted (one per handled message)."""
        return [json.loads(r.payload)["causation_id"] for r in await self.outbox() if r.topic == TOPIC]


@pytest.fixture
def h(store: Store, settings: Settings) -> Harness:
    return Harness(store, settings)


def ids(calls: list[list[Inbound]]) -> list[list[str]]:
    return [[i.dedupe_id for i in items] for items in calls]


async def test_valid_batch_is_handled_in_one_transaction_and_every_id_recorded(h: Harness) -> None:
    msgs = [command() for _ in range(3)]
    await h.consumer().consume([record(m, n) for n, m in enumerate(msgs)])
    assert ids(h.calls) == [[m.message_id for m in msgs]]
    assert h.commits == 1
    assert await h.processed() == {m.message_id for m in msgs}
    assert await h.echoed() == [m.message_id for m in msgs]
    assert await h.dead_letters() == []


async def test_redelivered_batch_is_not_handled_again_and_emits_nothing(h: Harness) -> None:
    records = [record(command(), n) for n in range(3)]
    consumer = h.consumer()
    await consumer.consume(records)
    before = await h.outbox()
    await consumer.consume(records)
    assert len(h.calls) == 1
    assert await h.outbox() == before


async def test_same_message_twice_in_one_batch_is_handled_once(h: Harness) -> None:
    msg = command()
    await h.consumer().consume([record(msg, 0), record(msg, 1)])
    assert ids(h.calls) == [[msg.message_id]]
    assert await h.echoed() == [msg.message_id]


async def test_garbage_and_key_mismatch_are_dead_lettered_and_marked_processed(h: Harness) -> None:
    good, mismatched = command(), command()
    records = [record(b"\xff\x00 not json", 0), record(mismatched, 1, key="another-state"), record(good, 2)]
    consumer = h.consumer()
    await consumer.consume(records)
    assert ids(h.calls) == [[good.message_id]]
    dead = await h.dead_letters()
    assert [(d["code"], d["source_offset"]) for d in dead] == [("invalid_json", 0), ("key_mismatch", 1)]
    assert dead[1]["causation_id"] == mismatched.message_id and dead[1]["source_key"] == "another-state"
    assert {r.key for r in await h.outbox() if r.topic == DEAD_LETTER} == {"k", "another-state"}
    garbage_id = Inbound(records[0]).dedupe_id
    assert await h.processed() == {garbage_id, mismatched.message_id, good.message_id}
    await consumer.consume(records)  # redelivery dead-letters nothing twice
    assert len(await h.dead_letters()) == 2 and len(h.calls) == 1


async def test_non_transient_error_dead_letters_only_the_failing_message(h: Harness) -> None:
    msgs = [command() for _ in range(3)]
    bad = msgs[1].message_id
    h.fail = lambda items: ValueError("bug") if any(i.dedupe_id == bad for i in items) else None
    records = [record(m, n) for n, m in enumerate(msgs)]
    consumer = h.consumer()
    await consumer.consume(records)
    # the batch, then each message alone; the bad one is only ever rolled back
    assert ids(h.calls) == [[m.message_id for m in msgs], [msgs[0].message_id], [bad], [msgs[2].message_id]]
    assert await h.echoed() == [msgs[0].message_id, msgs[2].message_id]
    dead = await h.dead_letters()
    assert [(d["code"], d["causation_id"], d["source_offset"]) for d in dead] == [("processing_error", bad, 1)]
    assert "ValueError: bug" in dead[0]["reason"]
    assert await h.processed() == {m.message_id for m in msgs}
    await consumer.consume(records)  # a redelivery neither handles nor dead-letters again
    assert len(h.calls) == 4 and len(await h.dead_letters()) == 1


async def test_single_failing_message_is_dead_lettered_with_processing_error(h: Harness) -> None:
    msg = command()
    h.fail = lambda items: ValueError("bug")
    await h.consumer().consume([record(msg, 7)])
    assert [(d["code"], d["source_offset"]) for d in await h.dead_letters()] == [("processing_error", 7)]
    assert await h.processed() == {msg.message_id} and await h.echoed() == []


async def test_transient_error_once_is_retried_and_committed_once(h: Harness) -> None:
    msgs = [command() for _ in range(2)]
    h.fail = lambda items: ConcurrencyConflict("lost CAS") if len(h.calls) == 1 else None
    await h.consumer().consume([record(m, n) for n, m in enumerate(msgs)])
    assert len(h.calls) == 2 and h.commits == 1
    assert await h.echoed() == [m.message_id for m in msgs]  # the first attempt's writes were rolled back
    assert await h.processed() == {m.message_id for m in msgs}
    assert await h.dead_letters() == []


async def test_transient_error_that_persists_raises_after_bounded_attempts_and_commits_nothing(
        h: Harness) -> None:
    h.fail = lambda items: ConcurrencyConflict("database keeps losing")
    with pytest.raises(ConcurrencyConflict):
        await h.consumer().consume([record(command(), n) for n in range(3)])
    assert len(h.calls) == 3  # settings.infra_retry_attempts, the batch only: no per-message fallback
    assert h.commits == 0
    assert await h.processed() == set() and await h.outbox() == []


def busy_guard(times: list[int]) -> Any:
    """A guard whose state lock is busy for the first times[0] transactions."""
    def guard(items: list[Inbound]) -> Any:
        times[0] -= 1
        if times[0] >= 0:
            raise LockBusy("held elsewhere")
        return nullcontext()
    return guard


async def test_busy_state_lock_is_retried_as_a_batch_not_split(h: Harness) -> None:
    msgs = [command() for _ in range(2)]
    await h.consumer(guard=busy_guard([1])).consume([record(m, n) for n, m in enumerate(msgs)])
    assert ids(h.calls) == [[m.message_id for m in msgs]]
    assert await h.dead_letters() == []


async def test_state_lock_busy_throughout_raises_and_dead_letters_nothing(h: Harness) -> None:
    with pytest.raises(LockBusy):
        await h.consumer(guard=busy_guard([10**6])).consume([record(command(), 0)])
    assert h.calls == [] and await h.outbox() == [] and await h.processed() == set()


async def test_without_dead_lettering_invalid_items_reach_the_handler(h: Harness) -> None:
    good, mismatched = command(), command()
    records = [record(b"garbage", 0), record(mismatched, 1, key="other"), record(good, 2)]
    await h.consumer(dead_letter_invalid=False).consume(records)
    assert [[i.code for i in items] for items in h.calls] == [["invalid_json", "key_mismatch", None]]
    assert await h.dead_letters() == []
    assert await h.processed() == {Inbound(records[0]).dedupe_id, mismatched.message_id, good.message_id}


async def test_dedupe_by_position_treats_a_republished_message_as_new(h: Harness) -> None:
    msg = command()
    consumer = h.consumer(dedupe_by_position=True)
    await consumer.consume([record(msg, 0)])
    await consumer.consume([record(msg, 0)])  # a redelivery of the same position
    await consumer.consume([record(msg, 5)])  # the same message_id re-published
    assert ids(h.calls) == [[msg.message_id], [msg.message_id]]
    assert await h.processed() == {f"{msg.message_id}@{TOPIC}/0/0", f"{msg.message_id}@{TOPIC}/0/5"}


async def test_by_message_id_a_republished_message_is_a_duplicate(h: Harness) -> None:
    msg = command()
    consumer = h.consumer()
    await consumer.consume([record(msg, 0)])
    await consumer.consume([record(msg, 5)])
    assert len(h.calls) == 1


async def test_overlong_key_is_still_dead_lettered(h: Harness) -> None:
    msg = command()
    await h.consumer().consume([record(msg, 0, key="k" * 1000)])
    dead = await h.dead_letters()
    assert [d["code"] for d in dead] == ["key_mismatch"] and dead[0]["source_key"] == "k" * 1000


async def test_longest_message_id_is_recorded_by_position(h: Harness) -> None:
    msg = command().model_copy(update={"message_id": "m" * 200})
    consumer = h.consumer(dedupe_by_position=True)
    await consumer.consume([record(msg, 12345)])
    await consumer.consume([record(msg, 12345)])
    assert ids(h.calls) == [[msg.message_id]] and await h.dead_letters() == []
