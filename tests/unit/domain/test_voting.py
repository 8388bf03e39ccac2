"""voting: cast_vote outcomes, every refusal code (and their order), expire, cancel, renewed rounds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.domain.approvals import open_round
from services.domain.errors import DomainError
from services.domain.model import Actor, MutationRequest, PendingReason, Status
from services.domain.policies import Verdict
from services.domain.policy_model import ApprovalSpec
from services.domain.voting import CastVote, VoteRefused, cancel, cast_vote, expire
from tests.support.factories import (
    NOW,
    REQUESTER,
    approved,
    pending_approval,
    principal,
    risky_flag_command,
    vote,
)

ALICE = principal("alice")
SEC1, SEC2, SEC3 = (principal(f"sec{n}", groups=("security",)) for n in (1, 2, 3))
FIN = principal("fran", roles=("finance-approver",))
MALLORY = principal("mallory", roles=("intern",), groups=("marketing",))
BOB_FINANCE = principal("bob", roles=("finance-approver",))  # the requester, who also holds the role
OPERATOR = Actor(actor_id="ops", actor_name="Operator", actor_type="administrator")
REJECTION = {"code": "too_risky", "category": "risk", "message": "rollout 50% is too much"}
MIN = timedelta(minutes=1)


def votes(request: MutationRequest, *steps: tuple[CastVote | Callable[[MutationRequest], CastVote], datetime]):
    """Apply votes in order; each is a CastVote or a function of the request so far (for the current round)."""
    for v, at in steps:
        request = cast_vote(request, v(request) if callable(v) else v, at)
    return request


def on_step_2(at: datetime = NOW) -> MutationRequest:
    """The review request after alice approved step 1 at `at` (security step open since `at`)."""
    return cast_vote(pending_approval(), vote(pending_approval(), ALICE), at)


def on_step_3() -> MutationRequest:
    request = on_step_2()
    return votes(request, (vote(request, SEC1), NOW + MIN), (vote(request, SEC2), NOW + 2 * MIN))


def refused(request: MutationRequest | None, v: CastVote, now: datetime) -> str:
    """The refusal code; asserts the request is left exactly as it was."""
    before = request.model_dump() if request is not None else None
    with pytest.raises(VoteRefused) as info:
        cast_vote(request, v, now)
    if request is not None:
        assert request.model_dump() == before
    return info.value.code


def tail(request: MutationRequest, before: MutationRequest) -> list[tuple[str, str]]:
    """(category, code) of the decisions appended since `before`."""
    assert request.decisions[: len(before.decisions)] == before.decisions
    return [(d.category, d.code) for d in request.decisions[len(before.decisions):]]


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


def _rejected() -> MutationRequest:
    request = pending_approval()
    return cast_vote(request, vote(request, ALICE, "reject"), NOW)


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
    ("rejected request", lambda: (_rejected(), vote(_rejected(), ALICE), NOW), "approval.request_closed"),
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
    ("request_closed before stale_round", lambda: (_rejected(), vote(_rejected(), ALICE, approval_round=9), NOW),
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
    lambda: (_rejected(), NOW + timedelta(days=1)),
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
        "rejected": _rejected,
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
