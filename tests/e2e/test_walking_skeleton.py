"""A governed mutation end to end over the real broker, with real Redis and SQLite/PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from contracts import topics
from tests.support.stack import Client, audit_types, audited

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def request(state_id: str, patch: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A MutationRequested as plain JSON, as any Kafka client would write it."""
    return {
        "message_id": str(uuid.uuid4()), "message_type": "MutationRequested", "schema_version": 1,
        "occurred_at": "2026-12-04T12:00:00Z", "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "state_id": state_id, "state_type": "flags", "mutation_type": "json.patch", "payload": {"patch": patch},
        "requester": {"actor_id": "bob", "actor_type": "user"}, **extra,
    }


def of(request_id: str, message_type: str | None = None) -> Any:
    return lambda e: e.get("request_id") == request_id and (message_type is None or e["message_type"] == message_type)


def codes(events: list[dict[str, Any]]) -> list[str]:
    return [e["decision"]["code"] for e in sorted(events, key=lambda e: e["sequence"])]


def new_state() -> str:
    return f"flags/{uuid.uuid4().hex[:8]}"


async def test_request_executes_to_version_1_and_is_audited(stack: Client) -> None:
    msg = request(new_state(), [{"op": "add", "path": "/dark_mode", "value": True}])
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])

    executed = await stack.wait_for(of(msg["request_id"], "MutationExecuted"))
    decided = await stack.wait_for(of(msg["request_id"], "RequestDecided"), count=4)

    assert executed[0]["resulting_version"] == 1
    assert executed[0]["document"] == {"dark_mode": True}
    assert codes(decided) == ["submitted", "approved", "validated", "executed"]
    audited = await audit_types(stack.settings, msg["request_id"], {"RequestDecided", "MutationExecuted"})
    assert audited.count("RequestDecided") == 4 and "MutationExecuted" in audited


async def test_same_request_again_is_a_duplicate_and_executes_nothing(stack: Client) -> None:
    msg = request(new_state(), [{"op": "add", "path": "/a", "value": 1}])
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])
    await stack.wait_for(of(msg["request_id"], "MutationExecuted"))

    await stack.send(topics.REQUESTS, {**msg, "message_id": str(uuid.uuid4())}, key=msg["state_id"])

    dupes = await stack.wait_for(of(msg["request_id"], "RequestDuplicate"))
    assert len(dupes) == 1 and dupes[0]["status"] == "executed"
    assert len(await stack.wait_for(of(msg["request_id"], "MutationExecuted"), count=2, timeout=2)) == 1


async def test_same_request_id_with_another_body_is_dead_lettered(stack: Client) -> None:
    msg = request(new_state(), [{"op": "add", "path": "/a", "value": 1}])
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])
    await stack.wait_for(of(msg["request_id"], "MutationExecuted"))
    conflicting = {**msg, "message_id": str(uuid.uuid4()), "payload": {"patch": []}}

    await stack.send(topics.REQUESTS, conflicting, key=msg["state_id"])

    dead = await stack.wait_for(lambda e: e.get("causation_id") == conflicting["message_id"])
    assert dead[0]["message_type"] == "MessageRejected" and dead[0]["code"] == "request_id_conflict"
    assert await audited(stack.settings, dead[0]["message_id"]) == "MessageRejected"


async def test_garbage_bytes_land_on_the_dead_letter_topic_with_a_code(stack: Client) -> None:
    garbage = b"\x00\xffnot json " + uuid.uuid4().bytes

    await stack.send(topics.REQUESTS, garbage, key="whatever")

    dead = await stack.wait_for(lambda e: e["message_type"] == "MessageRejected" and e["source_key"] == "whatever"
                                and e["size"] == len(garbage))
    assert dead[0]["code"] == "invalid_json"
    assert dead[0]["source_topic"] == stack.settings.topic(topics.REQUESTS)
    assert base64.b64decode(dead[0]["raw"]) == garbage
    assert await audited(stack.settings, dead[0]["message_id"]) == "MessageRejected"


async def test_policy_denied_request_ends_rejected_with_the_policy_reason(stack: Client) -> None:
    msg = request(new_state(), [{"op": "add", "path": "/a", "value": 1}], intent={"tags": ["frozen"]})
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])

    decided = await stack.wait_for(of(msg["request_id"], "RequestDecided"), count=2)

    assert codes(decided) == ["submitted", "rejected"]
    rejection = max(decided, key=lambda e: e["sequence"])["decision"]
    assert rejection["metadata"]["rejection"]["code"] == "policy_denied"
    assert "change freeze" in rejection["reason"]


async def test_patch_that_does_not_apply_ends_failed(stack: Client) -> None:
    msg = request(new_state(), [{"op": "test", "path": "/enabled", "value": True}])
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])

    failed = await stack.wait_for(of(msg["request_id"], "MutationFailed"))
    decided = await stack.wait_for(of(msg["request_id"], "RequestDecided"), count=4)

    assert failed[0]["code"] == "patch_not_applicable" and failed[0]["version"] == 0
    assert codes(decided)[-1] == "failed"


async def test_request_needing_approval_stops_pending_with_its_requirements(stack: Client) -> None:
    msg = request(f"flags/{uuid.uuid4().hex[:8]}", [{"op": "add", "path": "/a", "value": 1}],
                  intent={"risk_level": "high", "tags": ["prod"]})
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])

    decided = await stack.wait_for(of(msg["request_id"], "RequestDecided"), count=3)

    last = max(decided, key=lambda e: e["sequence"])
    assert last["status"] == "pending" and last["pending_reason"] == "approval"
    steps = [(r["step"], r.get("users"), r.get("group"), r.get("role"), r["quorum"]) for r in last["requirements"]]
    assert steps == [(1, ["alice"], None, None, 1), (2, None, "security", None, 2),
                     (3, None, None, "finance-approver", 1)]


async def test_stale_request_with_expected_version_is_rejected_as_stale(stack: Client) -> None:
    state = new_state()
    first = request(state, [{"op": "add", "path": "/a", "value": 1}], expected_version=0)
    second = request(state, [{"op": "add", "path": "/b", "value": 2}], expected_version=0)
    await stack.send(topics.REQUESTS, first, key=state)
    await stack.send(topics.REQUESTS, second, key=state)

    decided = await stack.wait_for(of(second["request_id"], "RequestDecided"), count=4)

    assert codes(decided)[-2:] == ["rejected_as_stale", "rejected"]
    assert (await stack.wait_for(of(first["request_id"], "MutationExecuted")))[0]["resulting_version"] == 1


async def test_stale_request_without_expected_version_revalidates_on_latest(stack: Client) -> None:
    state = new_state()
    first = request(state, [{"op": "add", "path": "/a", "value": 1}])
    second = request(state, [{"op": "add", "path": "/b", "value": 2}])
    await stack.send(topics.REQUESTS, first, key=state)
    await stack.send(topics.REQUESTS, second, key=state)

    executed = await stack.wait_for(of(second["request_id"], "MutationExecuted"))

    assert executed[0]["resulting_version"] == 2
    assert executed[0]["document"] == {"a": 1, "b": 2}
