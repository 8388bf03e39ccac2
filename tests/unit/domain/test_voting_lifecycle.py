"""voting: expiry, cancel and renewed approval rounds."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from services.domain.approvals import open_round
from services.domain.errors import DomainError
from services.domain.model import Actor, MutationRequest, PendingReason, Status
from services.domain.policies import Verdict
from services.domain.policy_model import ApprovalSpec
from services.domain.voting import cancel, cast_vote, expire
from tests.support.factories import (
    NOW,
    REQUESTER,
    approved,
    pending_approval,
    vote,
)
from tests.support.voting import (
    ALICE,
    FIN,
    MIN,
    OPERATOR,
    SEC1,
    SEC2,
    on_step_2,
    refused,
    rejected_by_alice,
    tail,
    votes,
)

# --- expiry -------------------------------------------------------------------------------------


def test_expire_a_request_whose_open_step_expired() -> None:
    request = on_step_2()
    after = expire(request, NOW + 30 * MIN)

    assert after.status is Status.expired and after.pending_reason is None
    assert tail(after, request) == [("approval", "expired"), ("lifecycle", "expired")]
    assert after.decisions[-2].metadata == {"approval_id": "r1-s2", "step": 2, "approval_round": 1, "quorum": 2}
    assert [r.status for r in after.requirements] == ["satisfied", "expired", "waiting"]


def test_expire_a_request_whose_request_deadline_passed() -> None:
    request = pending_approval()
    after = expire(request, NOW + timedelta(hours=1))
    assert after.status is Status.expired
    assert [r.status for r in after.requirements] == ["expired", "waiting", "waiting"]


@pytest.mark.parametrize("build", [
    lambda: (pending_approval(), NOW + 59 * MIN),
    lambda: (on_step_2(), NOW + 29 * MIN),
    lambda: (rejected_by_alice(), NOW + timedelta(days=1)),
    lambda: (approved(), NOW + timedelta(days=1)),
    lambda: (pending_approval({"steps": [{"users": ["alice"]}]}), NOW + timedelta(days=365)),
], ids=["request deadline ahead", "step deadline ahead", "terminal", "approved", "no deadline"])
def test_expire_refuses_when_not_due(build) -> None:
    request, now = build()
    before = request.model_dump()
    with pytest.raises(DomainError) as info:
        expire(request, now)
    assert info.value.code == "not_due"
    assert request.model_dump() == before


def test_vote_after_deadline_is_refused_expired_before_and_after_the_sweeper_ran() -> None:
    request = on_step_2()
    late = NOW + 45 * MIN
    assert refused(request, vote(request, SEC1), late) == "approval.expired"
    swept = expire(request, late)
    assert refused(swept, vote(request, SEC1), late) == "approval.expired"
    assert refused(swept, vote(request, SEC1, "reject"), late + timedelta(days=1)) == "approval.expired"


# --- cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "is_operator"), [(REQUESTER, False), (OPERATOR, True), (REQUESTER, True)],
                         ids=["requester", "operator", "requester-operator"])
@pytest.mark.parametrize("build", [pending_approval, on_step_2, approved], ids=["pending", "mid-steps", "approved"])
def test_cancel_by_requester_or_operator(build, actor: Actor, is_operator: bool) -> None:
    request = build()
    after = cancel(request, actor, is_operator, "changed my mind", NOW + MIN)

    assert after.status is Status.canceled and after.pending_reason is None
    assert tail(after, request) == [("lifecycle", "canceled")]
    assert after.decisions[-1].actor == actor and after.decisions[-1].reason == "changed my mind"
    assert after.decisions[-1].at == NOW + MIN


@pytest.mark.parametrize(("request_", "actor", "is_operator", "code"), [
    (None, REQUESTER, False, "unknown_request"),
    ("pending", Actor(actor_id="alice"), False, "not_authorized"),
    ("pending", OPERATOR, False, "not_authorized"),
    ("rejected", REQUESTER, False, "request_closed"),
    ("rejected", OPERATOR, True, "request_closed"),
    ("canceled", REQUESTER, False, "request_closed"),
    ("expired", OPERATOR, True, "request_closed"),
])
def test_cancel_refused(request_: str | None, actor: Actor, is_operator: bool, code: str) -> None:
    builds = {
        "pending": pending_approval,
        "rejected": rejected_by_alice,
        "canceled": lambda: cancel(pending_approval(), REQUESTER, False, None, NOW),
        "expired": lambda: expire(pending_approval(), NOW + timedelta(hours=2)),
    }
    request = builds[request_]() if request_ else None
    before = request.model_dump() if request else None
    with pytest.raises(DomainError) as info:
        cancel(request, actor, is_operator, "why", NOW + timedelta(hours=3))
    assert info.value.code == code
    assert (request.model_dump() if request else None) == before


# --- renewed rounds -----------------------------------------------------------------------------


def _renew(request: MutationRequest, now: datetime) -> MutationRequest:
    spec = ApprovalSpec.model_validate(request.approval_spec)
    verdict = Verdict("require_approval", "state moved", "prod-flags-need-review", approval=spec)
    return open_round(request, verdict, now, base_version=request.base_version + 1)


def test_renewed_round_voids_old_votes_and_refuses_votes_for_the_old_round() -> None:
    round_1 = on_step_2()
    round_1 = cast_vote(round_1, vote(round_1, SEC1), NOW + MIN)
    round_2 = _renew(round_1, NOW + 2 * MIN)

    assert round_2.approval_round == 2 and round_2.status is Status.pending
    assert round_2.pending_reason is PendingReason.approval
    assert [r.approval_id for r in round_2.requirements] == ["r2-s1", "r2-s2", "r2-s3"]
    assert all(r.approvals == () and r.rejections == () for r in round_2.requirements)
    assert [r.status for r in round_2.requirements] == ["open", "waiting", "waiting"]
    assert tail(round_2, round_1) == [("lifecycle", "pending"), ("approval", "requested")]
    assert round_2.decisions[-1].metadata["approval_round"] == 2

    stale = vote(round_1, ALICE)
    assert stale.approval_round == 1
    assert refused(round_2, stale, NOW + 3 * MIN) == "approval.stale_round"
    assert refused(round_2, vote(round_2, ALICE, approval_id="r1-s1"), NOW + 3 * MIN) == "approval.not_authorized"
    # alice's round-1 vote does not count: she votes again in round 2, and the step is satisfied anew
    again = cast_vote(round_2, vote(round_2, ALICE), NOW + 3 * MIN)
    assert again.requirements[0].status == "satisfied"
    assert again.decisions[-1].metadata["approval_round"] == 2


def test_renewed_round_from_approved_request() -> None:
    request = pending_approval({"steps": [{"users": ["alice"]}]})
    done = cast_vote(request, vote(request, ALICE), NOW)
    assert done.status is Status.approved
    renewed = _renew(done, NOW + MIN)
    assert renewed.status is Status.pending and renewed.approval_round == 2
    assert refused(renewed, vote(done, ALICE), NOW + MIN) == "approval.stale_round"
    assert cast_vote(renewed, vote(renewed, ALICE), NOW + MIN).status is Status.approved


def test_renewed_round_gets_a_fresh_policy_deadline() -> None:
    request = pending_approval()  # policy expires_in 1h, no client expires_at
    approved_at = NOW + 10 * MIN
    done = votes(request, (vote(request, ALICE), approved_at), (vote(request, SEC1), approved_at),
                 (vote(request, SEC2), approved_at), (vote(request, FIN), approved_at))
    assert done.status is Status.approved
    renewed = _renew(done, NOW + timedelta(hours=2))  # executed (stale) two hours later
    assert renewed.expires_at == NOW + timedelta(hours=3)


def test_stored_approval_spec_is_plain_json_and_reads_back() -> None:
    """Regression: the spec was stored with ISO 8601 durations ("PT30M") that ApprovalSpec could not parse,
    so every vote on a policy with an expires_in crashed with a ValidationError."""
    request = pending_approval()
    spec = ApprovalSpec.model_validate(json.loads(json.dumps(request.approval_spec)))
    assert spec.expires_in == timedelta(hours=1)
    assert [s.expires_in for s in spec.steps] == [None, timedelta(minutes=30), None]
