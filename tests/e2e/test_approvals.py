"""The approval workflow end to end: signed votes over the real broker, refusals, expiry, cancel."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from contracts import topics
from contracts.approvals import Rejection
from services.cli.demo import demo_key
from services.cli.votes import load_requests, signed_vote
from tests.support.stack import Client, audited

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]


def change(state_id: str, **intent: Any) -> dict[str, Any]:
    """A MutationRequested by bob as plain JSON."""
    return {
        "message_id": str(uuid.uuid4()), "message_type": "MutationRequested",
        "request_id": f"req-{uuid.uuid4().hex[:10]}", "state_id": state_id, "state_type": "flags",
        "mutation_type": "json.merge", "payload": {"merge": {"enabled": True}},
        "requester": {"actor_id": "bob"}, "intent": intent,
    }


def risky() -> dict[str, Any]:
    return change(f"flags/{uuid.uuid4().hex[:8]}", risk_level="high", tags=["prod"])


def of(request_id: str, message_type: str) -> Any:
    return lambda e: e.get("request_id") == request_id and e["message_type"] == message_type


def lifecycle(request_id: str, code: str) -> Any:
    return lambda e: (e.get("request_id") == request_id and e["message_type"] == "RequestDecided"
                      and e["decision"]["category"] == "lifecycle" and e["decision"]["code"] == code)


async def submit_pending(stack: Client, msg: dict[str, Any]) -> None:
    await stack.send(topics.REQUESTS, msg, key=msg["state_id"])
    assert await stack.wait_for(lifecycle(msg["request_id"], "pending"))


async def vote(stack: Client, msg: dict[str, Any], who: str, decision: str = "approve",
               **fields: Any) -> dict[str, Any]:
    """Sign `who`'s vote on the request's current round and publish it; returns the vote."""
    request = (await load_requests(stack.settings, msg["request_id"]))[0]
    doc = signed_vote(request, who, demo_key(who), decision, **fields)
    await stack.send(topics.APPROVALS, doc, key=msg["state_id"])
    return doc


async def refusal(stack: Client, doc: dict[str, Any]) -> dict[str, Any]:
    found = await stack.wait_for(lambda e: e.get("vote_message_id") == doc["message_id"])
    assert found, "no ApprovalRefused for the vote"
    return found[0]


async def approve_all(stack: Client, msg: dict[str, Any]) -> None:
    for who in ("alice", "sam", "sue", "fiona"):
        doc = await vote(stack, msg, who)
        granted = await stack.wait_for(lambda e, d=doc: e.get("causation_id") == d["message_id"])
        assert granted and granted[0]["message_type"] == "RequestDecided", granted


async def test_three_step_approval_by_signed_votes_executes(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)

    await approve_all(stack, msg)

    executed = await stack.wait_for(of(msg["request_id"], "MutationExecuted"))
    assert executed[0]["resulting_version"] == 1
    decided = await stack.wait_for(of(msg["request_id"], "RequestDecided"), count=13)
    codes = [e["decision"]["code"] for e in sorted(decided, key=lambda e: e["sequence"])]
    assert codes.count("quorum_satisfied") == 3 and codes[-1] == "executed"


async def test_a_rejection_ends_the_request_rejected_with_its_reason(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    await vote(stack, msg, "alice")

    await vote(stack, msg, "sam", "reject", reason="no rollback plan",
               rejection=Rejection(code="no_rollback", category="risk", message="no rollback plan"))

    rejected = await stack.wait_for(lifecycle(msg["request_id"], "rejected"))
    assert rejected[0]["status"] == "rejected"
    assert rejected[0]["decision"]["metadata"]["rejection"]["code"] == "no_rollback"


async def test_forged_signature_is_refused_and_changes_nothing(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    request = (await load_requests(stack.settings, msg["request_id"]))[0]
    forged = signed_vote(request, "alice", demo_key("sam"), "approve")  # alice's name, sam's key

    await stack.send(topics.APPROVALS, forged, key=msg["state_id"])

    refused = await refusal(stack, forged)
    assert refused["code"] == "approval.bad_signature"
    assert await audited(stack.settings, refused["message_id"]) == "ApprovalRefused"
    after = (await load_requests(stack.settings, msg["request_id"]))[0]
    assert after.revision == request.revision and after.requirements == request.requirements


async def test_self_approval_is_refused(stack: Client) -> None:
    msg = risky()  # bob asks; bob is also in group security (step 2)
    await submit_pending(stack, msg)
    await vote(stack, msg, "alice")
    await stack.wait_for(lambda e: e.get("request_id") == msg["request_id"]
                         and e.get("decision", {}).get("code") == "quorum_satisfied")

    doc = await vote(stack, msg, "bob")

    assert (await refusal(stack, doc))["code"] == "approval.self_approval"


async def test_vote_for_an_old_round_is_refused(stack: Client) -> None:
    msg = {**risky(), "resolution_strategy": "require_renewed_approval"}
    await submit_pending(stack, msg)
    round_one = (await load_requests(stack.settings, msg["request_id"]))[0]
    other = change(msg["state_id"])  # low risk: executes at once and moves the state to v1
    await stack.send(topics.REQUESTS, other, key=msg["state_id"])
    await stack.wait_for(of(other["request_id"], "MutationExecuted"))
    await approve_all(stack, msg)
    renewed = await stack.wait_for(lambda e: e.get("request_id") == msg["request_id"]
                                   and e.get("decision", {}).get("code") == "renewed_approval_required")
    assert renewed and renewed[0]["approval_round"] == 2

    old = signed_vote(round_one, "alice", demo_key("alice"), "approve")
    await stack.send(topics.APPROVALS, old, key=msg["state_id"])

    assert (await refusal(stack, old))["code"] == "approval.stale_round"


async def test_vote_on_a_closed_request_is_refused(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    await approve_all(stack, msg)
    await stack.wait_for(of(msg["request_id"], "MutationExecuted"))

    doc = await vote(stack, msg, "sid")

    assert (await refusal(stack, doc))["code"] == "approval.request_closed"


async def test_vote_after_its_step_deadline_is_refused_as_expired(stack: Client) -> None:
    msg = change(f"stepdeadline/{uuid.uuid4().hex[:8]}")
    await submit_pending(stack, msg)
    await vote(stack, msg, "alice")
    await stack.wait_for(lambda e: e.get("request_id") == msg["request_id"]
                         and e.get("decision", {}).get("code") == "quorum_satisfied")
    await asyncio.sleep(1.5)  # step 2 has a 1 s deadline from when it opened

    doc = await vote(stack, msg, "sam")

    assert (await refusal(stack, doc))["code"] == "approval.expired"


async def test_request_past_its_deadline_ends_expired(stack: Client) -> None:
    msg = change(f"short/{uuid.uuid4().hex[:8]}")
    await submit_pending(stack, msg)

    expired = await stack.wait_for(lifecycle(msg["request_id"], "expired"), timeout=15)

    assert expired and expired[0]["status"] == "expired"


async def test_cancel_by_the_requester_ends_canceled(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    cancel = {"message_id": str(uuid.uuid4()), "message_type": "CancelRequested",
              "request_id": msg["request_id"], "state_id": msg["state_id"],
              "actor": {"actor_id": "bob"}, "reason": "not needed any more"}

    await stack.send(topics.COMMANDS, cancel, key=msg["state_id"])

    canceled = await stack.wait_for(lifecycle(msg["request_id"], "canceled"))
    assert canceled[0]["decision"]["reason"] == "not needed any more"


async def test_cancel_by_someone_else_is_refused(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    cancel = {"message_id": str(uuid.uuid4()), "message_type": "CancelRequested",
              "request_id": msg["request_id"], "state_id": msg["state_id"], "actor": {"actor_id": "sam"}}

    await stack.send(topics.COMMANDS, cancel, key=msg["state_id"])

    refused = await stack.wait_for(lambda e: e.get("command_message_id") == cancel["message_id"])
    assert refused[0]["code"] == "not_authorized"


async def test_unsigned_and_replayed_votes_are_refused(stack: Client) -> None:
    msg = risky()
    await submit_pending(stack, msg)
    doc = await vote(stack, msg, "alice")
    await stack.wait_for(lambda e: e.get("causation_id") == doc["message_id"])
    unsigned = {**doc, "message_id": str(uuid.uuid4()), "signature": None}

    await stack.send(topics.APPROVALS, doc, key=msg["state_id"])  # the same vote, published again
    await stack.send(topics.APPROVALS, unsigned, key=msg["state_id"])

    assert (await refusal(stack, doc))["code"] == "approval.replay"
    assert (await refusal(stack, unsigned))["code"] == "approval.unsigned"
