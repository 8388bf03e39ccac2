"""voting: cast_vote outcomes and every refusal code (and their order)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.domain.model import MutationRequest, PendingReason, Status
from services.domain.voting import CastVote, cancel, cast_vote, expire
from tests.support.factories import (
    NOW,
    REQUESTER,
    approved,
    pending_approval,
    principal,
    risky_flag_command,
    vote,
)
from tests.support.voting import (
    ALICE,
    BOB_FINANCE,
    FIN,
    MALLORY,
    MIN,
    REJECTION,
    SEC1,
    SEC2,
    SEC3,
    on_step_2,
    on_step_3,
    refused,
    rejected_by_alice,
    tail,
    votes,
)

# --- outcomes -----------------------------------------------------------------------------------


def test_vote_satisfying_a_quorum_of_one_opens_the_next_step_with_its_own_clock() -> None:
    request = pending_approval()
    at = NOW + 5 * MIN
    after = cast_vote(request, vote(request, ALICE, reason="lgtm"), at)

    assert after.status is Status.pending and after.pending_reason is PendingReason.approval
    assert tail(after, request) == [("approval", "granted"), ("approval", "quorum_satisfied")]
    granted, satisfied = after.decisions[-2:]
    assert granted.actor.actor_id == "alice" and granted.at == at and granted.reason == "lgtm"
    assert granted.metadata == {"approval_id": "r1-s1", "step": 1, "approval_round": 1, "quorum": 1}
    assert satisfied.metadata["approvals"] == ["alice"]
    assert [(r.status, r.approvals) for r in after.requirements] == [
        ("satisfied", ("alice",)), ("open", ()), ("waiting", ())]
    assert after.requirements[1].expires_at == at + timedelta(minutes=30)
    assert after.revision == request.revision  # the store bumps revisions, not the domain


def test_vote_below_quorum_is_granted_and_the_step_stays_open() -> None:
    request = on_step_2()
    after = cast_vote(request, vote(request, SEC1), NOW + MIN)

    assert tail(after, request) == [("approval", "granted")]
    assert after.requirements[1].status == "open"
    assert after.requirements[1].approvals == ("sec1",)
    assert after.status is Status.pending


def test_vote_with_explicit_approval_id_of_the_open_step_is_applied() -> None:
    request = pending_approval()
    after = cast_vote(request, vote(request, ALICE, approval_id="r1-s1"), NOW)
    assert after.requirements[0].status == "satisfied"


def test_vote_without_intent_hash_is_applied() -> None:
    request = pending_approval()
    after = cast_vote(request, vote(request, ALICE, intent_hash=None), NOW)
    assert after.requirements[0].status == "satisfied"


def test_full_three_step_review_reaches_approved_with_decisions_in_order() -> None:
    request = pending_approval()
    after = votes(
        request,
        (vote(request, ALICE), NOW + MIN),
        (vote(request, SEC1), NOW + 2 * MIN),
        (vote(request, SEC3), NOW + 3 * MIN),
        (vote(request, FIN), NOW + 4 * MIN),
    )

    assert after.status is Status.approved and after.pending_reason is None
    assert tail(after, request) == [
        ("approval", "granted"), ("approval", "quorum_satisfied"),
        ("approval", "granted"), ("approval", "granted"), ("approval", "quorum_satisfied"),
        ("approval", "granted"), ("approval", "quorum_satisfied"),
        ("lifecycle", "approved"),
    ]
    assert [(r.status, r.approvals) for r in after.requirements] == [
        ("satisfied", ("alice",)), ("satisfied", ("sec1", "sec3")), ("satisfied", ("fran",))]
    assert [d.metadata.get("step") for d in after.decisions[len(request.decisions):-1]] == [1, 1, 2, 2, 2, 3, 3]
    assert after.decisions[-1].actor.actor_id == "fran"
    assert after.decisions[-1].at == NOW + 4 * MIN
    assert after.updated_at == NOW + 4 * MIN


def test_rejection_rejects_the_request_with_a_structured_reason() -> None:
    request = on_step_2()
    after = cast_vote(request, vote(request, SEC2, "reject", reason="no", rejection=REJECTION), NOW + MIN)

    assert after.status is Status.rejected and after.is_terminal
    assert tail(after, request) == [("approval", "rejected"), ("lifecycle", "rejected")]
    approval, lifecycle = after.decisions[-2:]
    assert approval.metadata["rejection"] == REJECTION and approval.metadata["step"] == 2
    assert lifecycle.metadata["rejection"] == REJECTION
    assert lifecycle.reason == REJECTION["message"]
    assert lifecycle.actor.actor_id == "sec2"
    assert after.requirements[1].status == "rejected" and after.requirements[1].rejections == ("sec2",)


def test_rejection_without_structured_reason_gets_a_default_one() -> None:
    request = pending_approval()
    after = cast_vote(request, vote(request, ALICE, "reject", reason="not now"), NOW)

    assert after.status is Status.rejected
    assert after.decisions[-1].metadata["rejection"] == {"code": "rejected", "category": None, "message": "not now"}


def test_deny_threshold_two_needs_two_rejections() -> None:
    request = pending_approval({"steps": [{"group": "security", "quorum": 3, "deny_threshold": 2}]})
    once = cast_vote(request, vote(request, SEC1, "reject", rejection=REJECTION), NOW)

    assert once.status is Status.pending
    assert tail(once, request) == [("approval", "rejected")]
    assert once.requirements[0].status == "open" and once.requirements[0].rejections == ("sec1",)

    twice = cast_vote(once, vote(once, SEC2, "reject"), NOW + MIN)
    assert twice.status is Status.rejected
    assert tail(twice, once) == [("approval", "rejected"), ("lifecycle", "rejected")]
    assert twice.requirements[0].rejections == ("sec1", "sec2")


def test_step_expiry_starts_when_the_step_opens() -> None:
    request = pending_approval()
    assert request.requirements[1].expires_at is None  # waiting steps have no clock yet
    opened = on_step_2(NOW + 20 * MIN)

    step = opened.requirements[1]
    assert step.expires_at == NOW + 50 * MIN
    assert opened.expires_at == NOW + timedelta(hours=1)
    assert opened.deadline == NOW + 50 * MIN
    after = cast_vote(opened, vote(opened, SEC1), NOW + 49 * MIN)  # 29 min into the step: still open
    assert after.requirements[1].approvals == ("sec1",)
    assert refused(after, vote(after, SEC2), NOW + 50 * MIN) == "approval.expired"


def test_first_step_expiry_starts_at_intake() -> None:
    request = pending_approval({"steps": [{"users": ["alice"], "expires_in": "10m"}]})
    assert request.requirements[0].expires_at == NOW + 10 * MIN
    assert request.expires_at is None


def test_request_deadline_is_the_earlier_of_expires_at_and_policy_expires_in() -> None:
    early = pending_approval(cmd=risky_flag_command(expires_at=NOW + 10 * MIN))
    late = pending_approval(cmd=risky_flag_command(expires_at=NOW + timedelta(days=1)))

    assert early.expires_at == NOW + 10 * MIN
    assert late.expires_at == NOW + timedelta(hours=1)
    assert refused(early, vote(early, ALICE), NOW + 10 * MIN) == "approval.expired"


# --- refusals -----------------------------------------------------------------------------------


def _expired_by_sweeper() -> tuple[MutationRequest, CastVote, datetime]:
    request = on_step_2()
    return expire(request, NOW + 30 * MIN), vote(request, SEC1), NOW + 31 * MIN


def _second_round_of_one_step_twice() -> MutationRequest:
    return pending_approval({"steps": [{"group": "ops"}, {"group": "ops"}], "separation_of_duties": True})


OPS = principal("olga", groups=("ops",))


def _rejected_once() -> MutationRequest:
    request = pending_approval({"steps": [{"group": "security", "deny_threshold": 2}]})
    return cast_vote(request, vote(request, SEC1, "reject"), NOW)


def _bob_counted_on_step_1() -> MutationRequest:
    """SoD request whose step 1 (somehow) counts the requester; step 2 is open."""
    request = _second_round_of_one_step_twice()
    first, second = request.requirements
    return request.model_copy(update={"requirements": (
        first.model_copy(update={"approvals": ("bob",), "status": "satisfied"}),
        second.model_copy(update={"status": "open"}))})

Case = Callable[[], tuple[MutationRequest | None, CastVote, datetime]]
REFUSALS: list[tuple[str, Case, str]] = [
    ("unknown request", lambda: (None, vote(pending_approval(), ALICE), NOW), "approval.unknown_request"),
    ("open step deadline passed", lambda: (on_step_2(), vote(on_step_2(), SEC1), NOW + 30 * MIN),
     "approval.expired"),
    ("request deadline passed", lambda: (pending_approval(), vote(pending_approval(), ALICE), NOW + 61 * MIN),
     "approval.expired"),
    ("already expired by the sweeper", _expired_by_sweeper, "approval.expired"),
    ("rejected request", lambda: (rejected_by_alice(), vote(rejected_by_alice(), ALICE), NOW), "approval.request_closed"),
    ("canceled request", lambda: (cancel(pending_approval(), REQUESTER, False, "x", NOW),
                                  vote(pending_approval(), ALICE), NOW), "approval.request_closed"),
    ("approved request", lambda: (approved(), vote(approved(), ALICE), NOW), "approval.not_pending_approval"),
    ("pending for another reason", lambda: (
        pending_approval().model_copy(update={"pending_reason": PendingReason.revalidation}),
        vote(pending_approval(), ALICE), NOW), "approval.not_pending_approval"),
    ("next round", lambda: (pending_approval(), vote(pending_approval(), ALICE, approval_round=2), NOW),
     "approval.stale_round"),
    ("round zero", lambda: (pending_approval(), vote(pending_approval(), ALICE, approval_round=0), NOW),
     "approval.stale_round"),
    ("other intent hash", lambda: (pending_approval(), vote(pending_approval(), ALICE, intent_hash="0" * 64), NOW),
     "approval.intent_mismatch"),
    ("qualifies for no step", lambda: (pending_approval(), vote(pending_approval(), MALLORY), NOW),
     "approval.not_authorized"),
    ("unknown approval id", lambda: (pending_approval(), vote(pending_approval(), ALICE, approval_id="r1-s9"), NOW),
     "approval.not_authorized"),
    ("approval id of a step it does not qualify for",
     lambda: (pending_approval(), vote(pending_approval(), ALICE, approval_id="r1-s2"), NOW),
     "approval.not_authorized"),
    ("later step not open yet", lambda: (pending_approval(), vote(pending_approval(), FIN), NOW),
     "approval.step_not_open"),
    ("earlier step already satisfied", lambda: (on_step_2(), vote(on_step_2(), ALICE), NOW + MIN),
     "approval.step_not_open"),
    ("reject on a waiting step", lambda: (pending_approval(), vote(pending_approval(), SEC1, "reject"), NOW),
     "approval.step_not_open"),
    ("requester approves", lambda: (
        pending_approval({"steps": [{"users": ["bob"]}]}), vote(pending_approval(), principal("bob")), NOW),
     "approval.self_approval"),
    ("requester approves through a role", lambda: (on_step_3(), vote(on_step_3(), BOB_FINANCE), NOW + 3 * MIN),
     "approval.self_approval"),
    ("one person on two steps", lambda: (
        (r := cast_vote(_second_round_of_one_step_twice(), vote(_second_round_of_one_step_twice(), OPS), NOW)),
        vote(r, OPS), NOW), "approval.separation_of_duties"),
    ("second approval", lambda: (
        (r := cast_vote(on_step_2(), vote(on_step_2(), SEC1), NOW)), vote(r, SEC1), NOW), "approval.duplicate"),
    ("reject after approve", lambda: (
        (r := cast_vote(on_step_2(), vote(on_step_2(), SEC1), NOW)), vote(r, SEC1, "reject"), NOW),
     "approval.duplicate"),
    ("second rejection", lambda: (_rejected_once(), vote(_rejected_once(), SEC1, "reject"), NOW),
     "approval.duplicate"),
]


@pytest.mark.parametrize(("case", "expected"), [(c, e) for _, c, e in REFUSALS], ids=[n for n, _, _ in REFUSALS])
def test_refused_vote_has_its_code_and_leaves_the_request_unchanged(case: Case, expected: str) -> None:
    request, v, now = case()
    assert refused(request, v, now) == expected


# Order (DESIGN §4): when a vote is wrong in two ways, the earlier code wins.
ORDER: list[tuple[str, Case, str]] = [
    ("expired before not_authorized and stale_round", lambda: (
        pending_approval(), vote(pending_approval(), MALLORY, approval_round=7), NOW + 2 * timedelta(hours=1)),
     "approval.expired"),
    ("expired (swept) before request_closed", _expired_by_sweeper, "approval.expired"),
    ("request_closed before stale_round", lambda: (rejected_by_alice(), vote(rejected_by_alice(), ALICE, approval_round=9), NOW),
     "approval.request_closed"),
    ("not_pending_approval before stale_round", lambda: (
        approved(), vote(approved(), ALICE, approval_round=3), NOW), "approval.not_pending_approval"),
    ("stale_round before intent_mismatch", lambda: (
        pending_approval(), vote(pending_approval(), ALICE, approval_round=2, intent_hash="x"), NOW),
     "approval.stale_round"),
    ("intent_mismatch before not_authorized", lambda: (
        pending_approval(), vote(pending_approval(), MALLORY, intent_hash="x"), NOW), "approval.intent_mismatch"),
    ("step_not_open before self_approval", lambda: (
        pending_approval(), vote(pending_approval(), BOB_FINANCE), NOW), "approval.step_not_open"),
    ("self_approval before separation_of_duties", lambda: (
        _bob_counted_on_step_1(), vote(_bob_counted_on_step_1(), principal("bob", groups=("ops",))), NOW),
     "approval.self_approval"),
]


@pytest.mark.parametrize(("case", "expected"), [(c, e) for _, c, e in ORDER], ids=[n for n, _, _ in ORDER])
def test_refusal_codes_are_checked_in_design_order(case: Case, expected: str) -> None:
    request, v, now = case()
    assert refused(request, v, now) == expected


@pytest.mark.parametrize("status", [s for s in Status if s not in (Status.pending, Status.approved, Status.expired)])
def test_nothing_is_accepted_after_a_terminal_status(status: Status) -> None:
    request = pending_approval().model_copy(update={"status": status, "pending_reason": None})
    for who, decision in ((ALICE, "approve"), (ALICE, "reject"), (SEC1, "approve"), (MALLORY, "approve")):
        assert refused(request, vote(request, who, decision), NOW) == "approval.request_closed"


def test_self_approval_is_applied_when_the_policy_allows_it() -> None:
    request = pending_approval({"steps": [{"users": ["bob"]}], "allow_self_approval": True})
    after = cast_vote(request, vote(request, principal("bob")), NOW)
    assert after.status is Status.approved


def test_one_person_may_satisfy_two_steps_without_separation_of_duties() -> None:
    request = pending_approval({"steps": [{"group": "ops"}, {"group": "ops"}]})
    after = votes(request, (vote(request, OPS), NOW), (vote(request, OPS), NOW + MIN))
    assert after.status is Status.approved
    assert [r.approvals for r in after.requirements] == [("olga",), ("olga",)]


def test_separation_of_duties_lets_another_member_satisfy_the_next_step() -> None:
    request = _second_round_of_one_step_twice()
    other = principal("otto", groups=("ops",))
    after = votes(request, (vote(request, OPS), NOW), (vote(request, other), NOW + MIN))
    assert after.status is Status.approved
