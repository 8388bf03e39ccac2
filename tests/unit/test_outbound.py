"""Domain results -> wire messages: RequestDecided per decision, ExecuteApproved, executions."""

from __future__ import annotations

from contracts.decisions import RequestDecided, RequestDuplicate
from contracts.executions import ExecuteApproved, MutationExecuted, MutationFailed
from services.common.outbound import decided, duplicate, executed
from services.domain.execution import execute
from services.domain.model import Status
from tests.support.factories import (
    DENY_ALL,
    NOW,
    approved,
    command,
    human_approved,
    policies,
    registry,
    review_policies,
    risky_flag_command,
    state,
    submitted,
)

LIMIT = 1_000_000


def of_type(messages, kind):
    return [m for m in messages if isinstance(m, kind)]


def test_decided_emits_one_request_decided_per_decision_with_its_log_index() -> None:
    request = submitted(command(correlation_id="corr-9"))

    messages = decided(None, request, "cause-1")

    events = of_type(messages, RequestDecided)
    assert [e.sequence for e in events] == [0, 1]
    assert [e.decision.code for e in events] == ["submitted", "approved"]
    assert all(e.status == "approved" and e.revision == request.revision for e in events)
    assert all(e.intent_hash == request.intent_hash for e in events)
    assert all((e.correlation_id, e.causation_id) == ("corr-9", "cause-1") for e in events)


def test_decided_emits_execute_approved_when_the_request_became_approved() -> None:
    request = submitted(command())

    messages = decided(None, request, "cause-1")

    (command_message,) = of_type(messages, ExecuteApproved)
    assert (command_message.request_id, command_message.state_id) == (request.request_id, request.state_id)
    assert command_message.revision == request.revision
    assert messages[-1] is command_message


def test_decided_uses_request_id_as_correlation_when_request_has_none() -> None:
    request = submitted(command())

    assert {m.correlation_id for m in decided(None, request, None)} == {request.request_id}


def test_decided_emits_no_execute_approved_when_rejected() -> None:
    messages = decided(None, submitted(command(), policy_set=policies(DENY_ALL)), "c")

    assert of_type(messages, ExecuteApproved) == []
    assert messages[-1].status == "rejected"
    assert messages[-1].decision.metadata["rejection"]["code"] == "policy_denied"


def test_decided_emits_only_new_decisions_and_no_execute_approved_when_already_approved() -> None:
    current = state(version=0)
    before = approved(command(), current)
    after = execute(before, current, registry(), policies(), NOW).request

    messages = decided(before, after, "exec-cause")

    assert of_type(messages, ExecuteApproved) == []
    assert [m.sequence for m in messages] == [2, 3]
    assert [m.decision.code for m in messages] == ["validated", "executed"]


def test_decided_emits_execute_approved_when_pending_request_gets_approved() -> None:
    before = submitted(risky_flag_command(), policy_set=review_policies())
    after = human_approved(risky_flag_command())

    messages = decided(before, after, "vote-1")

    assert len(of_type(messages, ExecuteApproved)) == 1
    assert [m.sequence for m in of_type(messages, RequestDecided)] == [3, 4]


def test_decided_carries_what_an_approver_needs_while_pending_approval() -> None:
    request = submitted(risky_flag_command(), policy_set=review_policies())

    messages = decided(None, request, "c")

    assert of_type(messages, ExecuteApproved) == []
    for event in messages:
        assert (event.status, event.pending_reason, event.approval_round) == ("pending", "approval", 1)
        assert event.mutation_type == "flags.set"
        assert event.payload == request.payload
        assert event.intent is not None and event.intent.risk_level == "high"
        assert event.requester is not None and event.requester.actor_id == "bob"
        assert event.base_version == 0
        assert event.expires_at == request.expires_at
        assert [r.approval_id for r in event.requirements] == ["r1-s1", "r1-s2", "r1-s3"]
        assert event.requirements[0].users == ["alice"]
        assert (event.requirements[1].group, event.requirements[1].quorum) == ("security", 2)
        assert event.requirements[2].role == "finance-approver"


def test_decided_omits_approver_details_when_not_pending_approval() -> None:
    (first, *_) = decided(None, submitted(command()), "c")

    assert (first.payload, first.requirements, first.intent, first.base_version) == (None, None, None, None)


def test_decided_messages_serialise_to_wire_json() -> None:
    for message in decided(None, submitted(risky_flag_command(), policy_set=review_policies()), "c"):
        assert type(message).model_validate_json(message.to_json()) == message


def test_executed_builds_mutation_executed_with_changes_and_document() -> None:
    current = state(version=0)
    outcome = execute(approved(command(), current), current, registry(), policies(), NOW)

    (message,) = executed(outcome, 0, "exec-cause", NOW, LIMIT)

    assert isinstance(message, MutationExecuted)
    assert (message.previous_version, message.resulting_version) == (0, 1)
    assert [(c.op, c.path, c.new) for c in message.changes] == [("add", "/title", "Hello")]
    assert message.document == {"title": "Hello"}
    assert message.execution_kind == "standard"
    assert message.executed_at == NOW
    assert message.causation_id == "exec-cause"


def test_executed_omits_document_above_the_size_limit() -> None:
    current = state(version=0)
    outcome = execute(approved(command(payload={"merge": {"blob": "x" * 200}}), current), current,
                      registry(), policies(), NOW)

    (message,) = executed(outcome, 0, None, NOW, document_limit=100)

    assert isinstance(message, MutationExecuted)
    assert message.document is None
    assert message.changes  # the changes still go out


def test_executed_reports_the_unchanged_version_for_a_no_op() -> None:
    current = state(version=5, data={"title": "Hello"})
    outcome = execute(approved(command(), current), current, registry(), policies(), NOW)

    (message,) = executed(outcome, 5, None, NOW, LIMIT)

    assert (message.previous_version, message.resulting_version, message.changes) == (5, 5, [])


def test_executed_builds_mutation_failed_when_patch_does_not_apply() -> None:
    current = state(version=2, data={"a": 1})
    patch = [{"op": "remove", "path": "/missing"}]
    outcome = execute(approved(command(mutation_type="json.patch", payload={"patch": patch}), current),
                      current, registry(), policies(), NOW)

    (message,) = executed(outcome, 2, "exec-cause", NOW, LIMIT)

    assert isinstance(message, MutationFailed)
    assert (message.code, message.version) == ("patch_not_applicable", 2)
    assert "missing" in message.reason


def test_executed_emits_nothing_when_execution_did_not_reach_an_outcome() -> None:
    outcome = execute(approved(command(expected_version=0), state(version=0)), state(version=1),
                      registry(), policies(), NOW)
    assert outcome.request.status is Status.rejected

    assert executed(outcome, 1, None, NOW, LIMIT) == []


def test_duplicate_answers_with_status_and_revision() -> None:
    request = submitted(command())

    message = duplicate(request, "again")

    assert isinstance(message, RequestDuplicate)
    assert (message.request_id, message.status, message.revision, message.causation_id) == (
        "req-1", "approved", request.revision, "again")
