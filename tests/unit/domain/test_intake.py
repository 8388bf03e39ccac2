"""intake.submit: auto-approval, rejection, approval rounds, validation, expiry, defaults, dedupe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.domain.hashing import intent_hash
from services.domain.intake import default_strategy, is_duplicate
from services.domain.model import Intent, PendingReason, Status, Strategy
from tests.support.factories import (
    DENY_ALL,
    NOW,
    REQUESTER,
    codes,
    command,
    policies,
    review_policies,
    risky_flag_command,
    state,
    submitted,
)

DENY_FROZEN = {
    "policies": [{"name": "freeze", "match": {"tags_any": ["frozen"]}, "effect": "deny", "reason": "frozen"}],
    "default": "allow",
}


def test_submit_auto_approves_when_policies_allow() -> None:
    request = submitted(command(), state(version=3, data={"title": "Old"}))

    assert request.status is Status.approved
    assert request.pending_reason is None
    assert codes(request) == ["submitted", "approved"]
    assert [d.category for d in request.decisions] == ["lifecycle", "lifecycle"]
    assert request.decisions[0].actor == REQUESTER
    assert request.base_version == 3
    assert request.approval_round == 0


def test_submit_records_base_version_zero_when_state_does_not_exist() -> None:
    assert submitted(command(), state(version=0)).base_version == 0


def test_submit_records_expected_version_as_base_version_when_given() -> None:
    request = submitted(command(expected_version=2), state(version=3))

    assert request.status is Status.approved
    assert request.base_version == 2
    assert request.expected_version == 2


def test_submit_records_intent_hash_body_hash_and_policy_version() -> None:
    cmd = command()
    policy_set = policies()
    request = submitted(cmd, policy_set=policy_set)

    assert request.intent_hash == intent_hash(cmd.state_id, cmd.state_type, cmd.mutation_type, cmd.payload)
    assert request.body_hash == cmd.body_hash()
    assert request.policy_version == policy_set.version


def test_submit_rejects_with_policy_denied_when_a_policy_denies() -> None:
    request = submitted(command(intent=Intent(tags=("frozen",))), policy_set=policies(DENY_FROZEN))

    assert request.status is Status.rejected
    assert codes(request) == ["submitted", "rejected"]
    rejection = request.decisions[-1]
    assert rejection.metadata["rejection"] == {"code": "policy_denied", "category": "policy", "message": "frozen"}
    assert rejection.metadata["policy"] == "freeze"
    assert rejection.actor.actor_type == "policy"
    assert rejection.actor.actor_id == "freeze"


def test_submit_rejects_with_policy_denied_when_default_is_deny() -> None:
    request = submitted(command(), policy_set=policies(DENY_ALL))

    assert request.status is Status.rejected
    assert request.decisions[-1].metadata["rejection"]["code"] == "policy_denied"
    assert "default: deny" in request.decisions[-1].metadata["rejection"]["message"]


def test_submit_opens_approval_round_one_when_a_policy_requires_approval() -> None:
    request = submitted(risky_flag_command(), policy_set=review_policies())

    assert request.status is Status.pending
    assert request.pending_reason is PendingReason.approval
    assert request.approval_round == 1
    assert codes(request) == ["submitted", "pending", "requested"]
    assert request.decisions[-1].category == "approval"
    assert request.decisions[-1].metadata == {"approval_round": 1, "requirement_count": 3}
    assert request.decisions[-1].actor.actor_id == "prod-flags-need-review"
    assert request.approval_spec is not None


def test_submit_builds_one_requirement_per_step_with_only_the_first_open() -> None:
    request = submitted(risky_flag_command(), policy_set=review_policies())

    first, second, third = request.requirements
    assert (first.approval_id, first.step, first.users, first.status) == ("r1-s1", 1, ("alice",), "open")
    assert (first.role, first.group, first.quorum, first.approvals) == (None, None, 1, ())
    assert (second.approval_id, second.group, second.quorum, second.status) == ("r1-s2", "security", 2, "waiting")
    # A step's own expiry starts when it opens; step 2 still waits for step 1.
    assert second.expires_at is None
    assert (third.approval_id, third.role, third.quorum, third.status) == ("r1-s3", "finance-approver", 1, "waiting")


def test_submit_sets_deadline_to_policy_expiry_when_request_expires_later() -> None:
    request = submitted(risky_flag_command(expires_at=NOW + timedelta(hours=3)), policy_set=review_policies())

    assert request.expires_at == NOW + timedelta(hours=1)


def test_submit_sets_deadline_to_request_expiry_when_it_comes_first() -> None:
    request = submitted(risky_flag_command(expires_at=NOW + timedelta(minutes=10)), policy_set=review_policies())

    assert request.expires_at == NOW + timedelta(minutes=10)


def test_submit_sets_deadline_to_policy_expiry_when_request_has_none() -> None:
    assert submitted(risky_flag_command(), policy_set=review_policies()).expires_at == NOW + timedelta(hours=1)


def test_submit_rejects_unknown_mutation_type() -> None:
    request = submitted(command(mutation_type="no.such.type"))

    assert request.status is Status.rejected
    rejection = request.decisions[-1].metadata["rejection"]
    assert rejection["code"] == "unknown_mutation_type"
    assert rejection["category"] == "validation"
    assert "json.patch" in rejection["message"]


@pytest.mark.parametrize(
    ("mutation_type", "payload"),
    [
        ("json.merge", {"merge": [1, 2]}),
        ("json.merge", {}),
        ("json.patch", {"patch": {"op": "add"}}),
        ("json.patch", {"patch": [{"op": "explode", "path": "/a"}]}),
        ("json.patch", {"patch": [{"op": "add", "path": "no-slash", "value": 1}]}),
        ("flags.set", {"flag": "x", "enabled": True, "rollout": 101}),
        ("flags.set", {"flag": "x"}),
    ],
)
def test_submit_rejects_invalid_payload(mutation_type: str, payload: dict) -> None:
    request = submitted(command(mutation_type=mutation_type, payload=payload))

    assert request.status is Status.rejected
    assert request.decisions[-1].metadata["rejection"]["code"] == "invalid_payload"


def test_submit_rejects_expected_version_ahead_of_current_version() -> None:
    request = submitted(command(expected_version=4), state(version=3))

    assert request.status is Status.rejected
    rejection = request.decisions[-1].metadata["rejection"]
    assert rejection["code"] == "expected_version_ahead"
    assert "4" in rejection["message"] and "3" in rejection["message"]


def test_submit_accepts_expected_version_equal_to_current_version() -> None:
    assert submitted(command(expected_version=3), state(version=3)).status is Status.approved


@pytest.mark.parametrize("expires_at", [NOW - timedelta(seconds=1), NOW])
def test_submit_expires_request_when_expires_at_is_not_in_the_future(expires_at) -> None:
    request = submitted(command(expires_at=expires_at), policy_set=policies(DENY_ALL))

    assert request.status is Status.expired
    assert codes(request) == ["submitted", "expired"]
    assert request.is_terminal


def test_submit_treats_naive_expires_at_as_utc_when_it_has_no_timezone() -> None:
    # A producer may send "2025-06-01T13:00:00" without an offset; the wire says times are UTC.
    naive_future = (NOW + timedelta(hours=1)).replace(tzinfo=None)
    naive_past = (NOW - timedelta(hours=1)).replace(tzinfo=None)

    assert submitted(command(expires_at=naive_future)).status is Status.approved
    assert submitted(command(expires_at=naive_past)).status is Status.expired
    naive_soon = (NOW + timedelta(minutes=10)).replace(tzinfo=None)
    pending = submitted(risky_flag_command(expires_at=naive_soon), policy_set=review_policies())
    assert pending.expires_at == NOW + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("expected_version", "explicit", "strategy"),
    [
        (3, None, Strategy.reject_stale),
        (0, None, Strategy.reject_stale),
        (None, None, Strategy.revalidate_on_latest),
        (3, Strategy.rebase_if_disjoint, Strategy.rebase_if_disjoint),
        (None, Strategy.require_renewed_approval, Strategy.require_renewed_approval),
    ],
)
def test_default_strategy_follows_expected_version_unless_explicit(expected_version, explicit, strategy) -> None:
    cmd = command(expected_version=expected_version, resolution_strategy=explicit)

    assert default_strategy(cmd) is strategy
    assert submitted(cmd, state(version=3)).resolution_strategy is strategy


def test_is_duplicate_when_body_is_the_same() -> None:
    existing = submitted(command())

    assert is_duplicate(existing, command())
    assert is_duplicate(existing, command(correlation_id="another-trace"))


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"merge": {"title": "Other"}}},
        {"expected_version": 0},
        {"reason": "other reason"},
        {"intent": Intent(risk_level="high")},
        {"state_id": "docs/other"},
        {"metadata": {"k": "v"}},
    ],
)
def test_is_not_duplicate_when_body_differs(change: dict) -> None:
    existing = submitted(command())

    assert not is_duplicate(existing, command(**change))


def test_submit_rejects_state_type_mismatch_when_the_state_exists_with_another_type() -> None:
    existing = state(version=3, data={"plan": "pro"}, state_type="billing")

    request = submitted(command(state_type="document"), existing)

    assert request.status is Status.rejected
    assert request.decisions[-1].metadata["rejection"]["code"] == "state_type_mismatch"


def test_submit_defaults_a_request_needing_approval_to_renewed_approval() -> None:
    request = submitted(risky_flag_command(), policy_set=review_policies())

    assert request.status is Status.pending
    assert request.resolution_strategy is Strategy.require_renewed_approval


def test_submit_keeps_reject_stale_for_a_request_needing_approval_with_expected_version() -> None:
    request = submitted(risky_flag_command(expected_version=0), policy_set=review_policies())

    assert request.resolution_strategy is Strategy.reject_stale
