"""`mutator demo`: a scripted scenario over a running `mutator dev up` stack, as a readable timeline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts import topics
from contracts.requests import MutationRequested
from services.cli.client import describe, publish
from services.cli.votes import load_requests, publish_raw, signed_vote
from services.common.settings import Settings

Say = Callable[[str], None]


def demo_key(principal: str) -> str:
    """A bundled demo private key (matches the bundled example directory)."""
    return (files("services.examples") / "demo-keys" / f"{principal}.key").read_text().strip()


def change(state_id: str, value: Any, expires_at: datetime | None = None, **intent: Any) -> MutationRequested:
    """A flag change by bob."""
    return MutationRequested(
        request_id=f"demo-{uuid.uuid4().hex[:8]}", state_id=state_id, state_type="feature-flags",
        mutation_type="json.merge", payload={"merge": {"enabled": value}}, intent=intent or {},
        requester={"actor_id": "bob", "actor_name": "Bob Requester"}, reason="demo",
        expires_at=expires_at,
    )


class Timeline:
    """Reads decisions and executions and prints the ones about the demo's requests, in order."""

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings, self.say = settings, say
        self.ours: set[str] = set()
        self.backlog: list[dict[str, Any]] = []
        self.consumer = AIOKafkaConsumer(
            *[settings.topic(t) for t in (topics.DECISIONS, topics.EXECUTIONS)],
            bootstrap_servers=settings.kafka_bootstrap, group_id=None, auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms)

    async def until(self, request_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> None:
        """Print the demo's events until one of this request's satisfies `done`."""
        self.ours.add(request_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.backlog:
                doc = self.backlog.pop(0)
                if doc.get("request_id") in self.ours:
                    self.say("    " + describe(doc))
                    if doc.get("request_id") == request_id and done(doc):
                        return
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                self.backlog.extend(json.loads(r.value) for r in records)
        raise TimeoutError(f"{request_id}: no outcome within {timeout} s; is `mutator dev up` running?")


async def run_demo(settings: Settings, say: Say) -> None:
    """Auto-approved, denied, three-step approval with signed votes, and expiry."""
    timeline = Timeline(settings, say)
    await timeline.consumer.start()
    try:
        await _scenario(settings, timeline, say)
    finally:
        await timeline.consumer.stop()


def _status(*wanted: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: doc.get("message_type") == "RequestDecided" and doc["status"] in wanted and \
        doc["decision"]["category"] == "lifecycle"


async def _scenario(settings: Settings, timeline: Timeline, say: Say) -> None:
    run = uuid.uuid4().hex[:6]
    say("1. A low-risk change: policies allow it, it executes.")
    msg = change(f"flags/demo-{run}-search", True)
    await publish(settings, msg)
    await timeline.until(msg.request_id, lambda d: d.get("message_type") in ("MutationExecuted", "MutationFailed"))

    say("2. A change tagged `frozen`: the change-freeze policy denies it.")
    msg = change(f"flags/demo-{run}-checkout", True, tags=["frozen"])
    await publish(settings, msg)
    await timeline.until(msg.request_id, _status("rejected"))

    say("3. A high-risk prod flag: alice, then 2 of 3 in group security, then role finance-approver.")
    msg = change(f"flags/demo-{run}-payments", True, risk_level="high", tags=["prod"])
    await publish(settings, msg)
    await timeline.until(msg.request_id, _status("pending"))
    for approver in ("alice", "sam", "sue", "fiona"):
        request = (await load_requests(settings, msg.request_id))[0]
        say(f"  {approver} signs and sends an approval")
        await publish_raw(settings, topics.APPROVALS, msg.state_id,
                          signed_vote(request, approver, demo_key(approver), "approve", reason="looks right"))
        await timeline.until(msg.request_id, lambda d: d.get("message_type") == "ApprovalRefused" or (
            d.get("message_type") == "RequestDecided" and d["decision"]["code"] in ("granted",)))
    await timeline.until(msg.request_id, lambda d: d.get("message_type") == "MutationExecuted")

    say("4. A change needing approval that nobody approves: it expires at its deadline.")
    msg = change(f"flags/demo-{run}-ledger", True, risk_level="critical",
                 expires_at=datetime.now(UTC) + timedelta(seconds=3))
    await publish(settings, msg)
    await timeline.until(msg.request_id, _status("expired"), timeout=30)
    say("done.")


def main(settings: Settings, say: Say) -> None:
    """Entry point for the CLI."""
    asyncio.run(run_demo(settings, say))
