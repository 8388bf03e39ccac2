"""execution.execute: apply when fresh, and every stale-resolution strategy."""

from __future__ import annotations

import pytest

from services.domain.errors import InvalidTransition
from services.domain.execution import execute
from services.domain.model import Change, PendingReason, Status, Strategy
from services.domain.mutation_types import MutationRegistry
from tests.support.factories import (
    ALLOW_ALL,
    DENY_ALL,
    NOW,
    approved,
    codes,
    command,
    human_approved,
    policies,
    registry,
    review_policies,
    risky_flag_command,
    state,
    submitted,
)

FLAG_STATE_ID = "flags/checkout"


def run(request, current, policy_set=None, changed_paths=(), reg=None):
    return execute(request, current, reg or registry(), policy_set or policies(), NOW, changed_paths)


def test_execute_validates_and_creates_state_at_version_one_when_it_did_not_exist() -> None:
    request = approved(command(payload={"merge": {"title": "Hello"}}))

    outcome = run(request, state(version=0))

    assert outcome.executed
    assert codes(outcome.request)[-2:] == ["validated", "executed"]
    assert outcome.request.decisions[-2].metadata == {"base_version": 0, "current_version": 0}
    assert outcome.request.decisions[-1].metadata == {"previous_version": 0, "resulting_version": 1,
                                                      "change_count": 1}
    assert outcome.request.resulting_version == 1
    assert outcome.state is not None
    assert (outcome.state.version, outcome.state.data) == (1, {"title": "Hello"})
    assert outcome.applied is not None
    assert outcome.applied.changes == (Change(op="add", path="/title", new="Hello"),)
    assert outcome.failure is None


def test_execute_bumps_version_by_one_and_lists_every_change() -> None:
    current = state(version=4, data={"title": "Old", "draft": True})
    request = approved(command(payload={"merge": {"title": "New", "draft": None, "n": 1}}), current)

    outcome = run(request, current)

    assert outcome.state is not None and outcome.state.version == 5
    assert outcome.state.data == {"title": "New", "n": 1}
    assert set(outcome.applied.changes) == {
        Change(op="remove", path="/draft", old=True),
        Change(op="add", path="/n", new=1),
        Change(op="replace", path="/title", old="Old", new="New"),
    }


def test_execute_keeps_version_when_mutation_changes_nothing() -> None:
    current = state(version=2, data={"title": "Same"})
    request = approved(command(payload={"merge": {"title": "Same"}}), current)

    outcome = run(request, current)

    assert outcome.executed
    assert outcome.state is None  # nothing to write
    assert outcome.applied is not None and outcome.applied.changes == ()
    assert outcome.request.resulting_version == 2
    assert outcome.request.decisions[-1].metadata["resulting_version"] == 2


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "test", "path": "/title", "value": "Other"}, {"op": "replace", "path": "/title", "value": "X"}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "", "value": [1, 2]}],
    ],
)
def test_execute_fails_with_patch_not_applicable_when_patch_does_not_apply(patch) -> None:
    current = state(version=1, data={"title": "Old"})
    request = approved(command(mutation_type="json.patch", payload={"patch": patch}), current)

    outcome = run(request, current)

    assert outcome.request.status is Status.failed
    assert outcome.failure is not None and outcome.failure.code == "patch_not_applicable"
    assert outcome.state is None
    assert outcome.request.resulting_version is None
    failed = outcome.request.decisions[-1]
    assert failed.code == "failed"
    assert failed.metadata == {"failure_code": "patch_not_applicable", "version": 1}
    assert current.data == {"title": "Old"}


def test_execute_fails_with_unknown_mutation_type_when_type_was_unregistered() -> None:
    current = state(version=1)
    request = approved(command(), current)

    outcome = run(request, current, reg=MutationRegistry())

    assert outcome.request.status is Status.failed
    assert outcome.failure is not None and outcome.failure.code == "unknown_mutation_type"


def test_execute_raises_invalid_transition_when_request_is_not_approved() -> None:
    pending = submitted(risky_flag_command(), policy_set=review_policies())

    with pytest.raises(InvalidTransition):
        run(pending, state(FLAG_STATE_ID, state_type="feature-flags"))


def test_execute_rejects_as_stale_when_strategy_is_reject_stale() -> None:
    request = approved(command(expected_version=1), state(version=1))
    assert request.resolution_strategy is Strategy.reject_stale

    outcome = run(request, state(version=2, data={"title": "moved"}))

    assert outcome.request.status is Status.rejected
    assert codes(outcome.request)[-2:] == ["rejected_as_stale", "rejected"]
    assert outcome.request.decisions[-2].metadata == {"base_version": 1, "current_version": 2}
    assert outcome.request.decisions[-1].metadata["rejection"]["code"] == "stale"
    assert outcome.state is None and outcome.applied is None


def test_execute_revalidates_and_executes_on_latest_when_policies_still_allow() -> None:
    request = approved(command(), state(version=1))
    assert request.resolution_strategy is Strategy.revalidate_on_latest

    outcome = run(request, state(version=3, data={"body": "x"}))

    assert outcome.executed
    assert codes(outcome.request)[-3:] == ["revalidation_required", "validated", "executed"]
    assert outcome.request.base_version == 3
    assert outcome.state is not None and outcome.state.version == 4
    assert outcome.state.data == {"body": "x", "title": "Hello"}


def test_execute_revalidation_rejects_when_policies_now_deny() -> None:
    request = approved(command(), state(version=1))

    outcome = run(request, state(version=2), policy_set=policies(DENY_ALL))

    assert outcome.request.status is Status.rejected
    assert codes(outcome.request)[-2:] == ["revalidation_required", "rejected"]
    assert outcome.request.decisions[-1].metadata["rejection"]["code"] == "policy_denied"
    assert outcome.state is None


def test_execute_revalidation_opens_approval_round_when_policies_now_require_approval() -> None:
    current = state(FLAG_STATE_ID, version=1, state_type="feature-flags")
    request = approved(risky_flag_command(), current)  # auto-approved under allow-all

    outcome = run(request, current.model_copy(update={"version": 2}), policy_set=review_policies())

    assert outcome.request.status is Status.pending
    assert outcome.request.pending_reason is PendingReason.approval
    assert outcome.request.approval_round == 1
    assert outcome.request.base_version == 2
    assert [r.approval_id for r in outcome.request.requirements] == ["r1-s1", "r1-s2", "r1-s3"]
    assert codes(outcome.request)[-3:] == ["revalidation_required", "pending", "requested"]
    assert outcome.state is None


def test_execute_rebases_when_changed_paths_are_disjoint() -> None:
    request = approved(command(resolution_strategy=Strategy.rebase_if_disjoint), state(version=1))

    outcome = run(request, state(version=2, data={"body": "b"}), changed_paths=["/body"])

    assert outcome.executed
    assert codes(outcome.request)[-2:] == ["rebased", "executed"]
    assert outcome.state is not None and outcome.state.version == 3
    assert outcome.state.data == {"body": "b", "title": "Hello"}


def test_execute_rebase_renews_approval_when_changed_paths_overlap() -> None:
    current = state(FLAG_STATE_ID, version=1, state_type="feature-flags")
    request = human_approved(risky_flag_command(resolution_strategy=Strategy.rebase_if_disjoint), current)

    outcome = run(request, current.model_copy(update={"version": 2}), policy_set=review_policies(),
                  changed_paths=["/flags/new-checkout/rollout"])

    assert outcome.request.status is Status.pending
    assert outcome.request.approval_round == 2
    assert codes(outcome.request)[-3:] == ["renewed_approval_required", "pending", "requested"]


def test_execute_rebase_rejects_as_stale_when_paths_overlap_and_no_approval_policy_applies() -> None:
    request = approved(command(resolution_strategy=Strategy.rebase_if_disjoint), state(version=1))

    outcome = run(request, state(version=2), policy_set=policies(ALLOW_ALL), changed_paths=["/title"])

    assert outcome.request.status is Status.rejected
    assert codes(outcome.request)[-2:] == ["rejected_as_stale", "rejected"]
    assert outcome.request.decisions[-1].metadata["rejection"]["code"] == "stale"


def test_execute_rebase_treats_a_root_change_as_overlapping() -> None:
    request = approved(command(resolution_strategy=Strategy.rebase_if_disjoint), state(version=1))

    outcome = run(request, state(version=2), changed_paths=[""])

    assert outcome.request.status is Status.rejected


def test_execute_renewed_approval_opens_round_two_with_fresh_requirements() -> None:
    current = state(FLAG_STATE_ID, version=1, state_type="feature-flags")
    cmd = risky_flag_command(resolution_strategy=Strategy.require_renewed_approval)
    request = human_approved(cmd, current, votes=("alice",))
    assert request.approval_round == 1

    outcome = run(request, current.model_copy(update={"version": 2}), policy_set=review_policies())

    renewed = outcome.request
    assert renewed.status is Status.pending and renewed.pending_reason is PendingReason.approval
    assert renewed.approval_round == 2
    assert renewed.base_version == 2
    assert [r.approval_id for r in renewed.requirements] == ["r2-s1", "r2-s2", "r2-s3"]
    assert all(r.approvals == () for r in renewed.requirements)
    assert [r.status for r in renewed.requirements] == ["open", "waiting", "waiting"]
    assert codes(renewed)[-3:] == ["renewed_approval_required", "pending", "requested"]
    assert renewed.decisions[-3].metadata == {"base_version": 1, "current_version": 2}


def test_execute_renewed_approval_rejects_as_stale_when_no_approval_policy_applies() -> None:
    request = approved(command(resolution_strategy=Strategy.require_renewed_approval), state(version=1))

    outcome = run(request, state(version=2))

    assert outcome.request.status is Status.rejected
    assert codes(outcome.request)[-2:] == ["rejected_as_stale", "rejected"]


def test_execute_rebase_counts_a_move_source_as_touched() -> None:
    current = state(version=1, data={"title": "T"})
    patch = [{"op": "move", "from": "/title", "path": "/heading"}]
    request = approved(command(mutation_type="json.patch", payload={"patch": patch},
                               resolution_strategy=Strategy.rebase_if_disjoint), current)

    outcome = run(request, state(version=2, data={"title": "T2"}), changed_paths=["/title"])

    assert outcome.request.status is Status.rejected
    assert codes(outcome.request)[-2] == "rejected_as_stale"
