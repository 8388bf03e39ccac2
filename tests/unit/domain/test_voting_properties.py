"""Stateful property test of the pure approval workflow: random policies, principals, votes, clock, sweeps, cancels."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.domain.approvals import open_round
from services.domain.errors import DomainError
from services.domain.model import TERMINAL, Actor, MutationRequest, PendingReason, Requirement, Status
from services.domain.policies import Verdict
from services.domain.policy_model import ApprovalSpec
from services.domain.voting import CastVote, Principal, VoteRefused, cancel, cast_vote, expire
from tests.support.factories import NOW, REQUESTER, approval_policies, risky_flag_command, submitted

IDS = (REQUESTER.actor_id, "p1", "p2", "p3", "p4")
ROLES = ("r1", "r2")
GROUPS = ("g1", "g2")
DURATIONS = (None, None, "10m", "30m", "1h")
REJECTION = {"code": "nope", "category": "risk", "message": "too risky"}



def memberships(names: tuple[str, str]) -> st.SearchStrategy[frozenset[str]]:
    """Dense on purpose (most principals hold something), so steps are usually satisfiable."""
    a, b = names
    return st.sampled_from([frozenset(), frozenset({a}), frozenset({b}), frozenset({a, b}), frozenset({a, b})])


populations = st.fixed_dictionaries({who: st.tuples(memberships(ROLES), memberships(GROUPS)) for who in IDS})
targets = st.one_of(
    st.lists(st.sampled_from(IDS), unique=True, max_size=3).map(lambda u: {"users": u}),
    st.sampled_from(ROLES).map(lambda r: {"role": r}),
    st.sampled_from(GROUPS).map(lambda g: {"group": g}),
)
steps = st.builds(
    lambda target, quorum, deny, expires: {**target, "quorum": quorum, "deny_threshold": deny,
                                           **({"expires_in": expires} if expires else {})},
    targets, st.sampled_from([1, 1, 1, 2, 2, 3]), st.sampled_from([1, 1, 2]), st.sampled_from(DURATIONS),
)
specs = st.builds(
    lambda s, self_ok, sod, expires: {"steps": s, "allow_self_approval": self_ok, "separation_of_duties": sod,
                                      **({"expires_in": expires} if expires else {})},
    st.lists(steps, min_size=1, max_size=3), st.booleans(), st.booleans(), st.sampled_from(DURATIONS),
)


def qualifies(population: dict[str, tuple[frozenset[str], frozenset[str]]], who: str, r: Requirement) -> bool:
    """Independent of Principal.qualifies: the directory's view of who may vote on `r`."""
    roles, groups = population[who]
    if r.users is not None:
        return who in r.users
    if r.role is not None:
        return r.role in roles
    return r.group in groups


def deadline(request: MutationRequest) -> datetime | None:
    candidates = [request.expires_at, *(r.expires_at for r in request.requirements if r.status == "open")]
    present = [d for d in candidates if d is not None]
    return min(present) if present else None


def awaiting(request: MutationRequest) -> bool:
    return request.status is Status.pending and request.pending_reason is PendingReason.approval


def expected_refusal(request: MutationRequest, v: CastVote, now: datetime, population: Any,
                     spec: dict[str, Any]) -> str | None:
    """DESIGN §4, domain codes in order; None when the vote must be applied."""
    who = v.principal.principal_id
    due = deadline(request)
    if request.status is Status.expired or (awaiting(request) and due is not None and due <= now):
        return "approval.expired"
    if request.status in TERMINAL:
        return "approval.request_closed"
    if not awaiting(request):
        return "approval.not_pending_approval"
    if v.approval_round != request.approval_round:
        return "approval.stale_round"
    if v.intent_hash is not None and v.intent_hash != request.intent_hash:
        return "approval.intent_mismatch"
    named = [r for r in request.requirements if v.approval_id is None or v.approval_id == r.approval_id]
    mine = [r for r in named if qualifies(population, who, r)]
    if not mine:
        return "approval.not_authorized"
    target = next((r for r in mine if r.status == "open"), None)
    if target is None:
        return "approval.step_not_open"
    if who == request.requester.actor_id and not spec["allow_self_approval"]:
        return "approval.self_approval"
    if spec["separation_of_duties"] and any(
        who in r.voters for r in request.requirements if r.approval_id != target.approval_id
    ):
        return "approval.separation_of_duties"
    if who in target.voters:
        return "approval.duplicate"
    return None


class VotingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.request: MutationRequest | None = None
        self.seen: tuple = ()
        self.closed: tuple | None = None

    @initialize(population=populations, spec=specs, client_expiry=st.none() | st.integers(1, 24))
    def start(self, population: Any, spec: dict[str, Any], client_expiry: int | None) -> None:
        self.population = population
        self.principals = {who: Principal(who, who, roles, groups) for who, (roles, groups) in population.items()}
        self.spec = spec
        self.approval = ApprovalSpec.model_validate(spec)
        expires_at = NOW + timedelta(minutes=5 * client_expiry) if client_expiry else None
        self.request = submitted(risky_flag_command(expires_at=expires_at), policy_set=approval_policies(spec))
        self.now = NOW
        assert awaiting(self.request) and self.request.approval_round == 1

    # --- rules ----------------------------------------------------------------------------------

    # Two vote rules, so Hypothesis' swarm testing (which disables random rules per run) rarely silences voting.
    @rule(data=st.data(), count=st.integers(1, 3))
    def votes_by_anyone(self, data: st.DataObject, count: int) -> None:
        for _ in range(count):
            self._vote(data, IDS)

    @rule(data=st.data(), count=st.integers(1, 3))
    def votes_by_the_open_steps_approvers(self, data: st.DataObject, count: int) -> None:
        """Mostly principals the directory says may vote on the open step, so runs reach approval."""
        for _ in range(count):
            assert self.request is not None
            eligible = [w for w in IDS for r in self.request.requirements
                        if r.status == "open" and qualifies(self.population, w, r)]
            self._vote(data, eligible or IDS)

    def _vote(self, data: st.DataObject, pool: tuple[str, ...] | list[str]) -> None:
        request = self.request
        assert request is not None
        who = data.draw(st.sampled_from(pool), label="who")
        current = request.approval_round
        v = CastVote(
            principal=self.principals[who],
            approval_round=data.draw(st.sampled_from([current] * 10 + [current - 1, current + 1]), label="round"),
            decision=data.draw(st.sampled_from(["approve"] * 4 + ["reject"]), label="decision"),
            intent_hash=data.draw(st.sampled_from([request.intent_hash] * 4 + [None, "0" * 64]), label="hash"),
            approval_id=data.draw(
                st.none() | st.none() | st.sampled_from([r.approval_id for r in request.requirements] + ["r9-s9"]),
                label="approval_id"),
            reason=data.draw(st.none() | st.just("because")),
            rejection=data.draw(st.none() | st.just(REJECTION)),
        )
        expected = expected_refusal(request, v, self.now, self.population, self.spec)
        before = request.model_dump()
        try:
            after = cast_vote(request, v, self.now)
        except VoteRefused as refusal:
            assert refusal.code == expected, (refusal.code, refusal.reason)
            event(refusal.code)
            assert request.model_dump() == before
            return
        assert expected is None, f"applied a vote that should be refused {expected}"
        new = after.decisions[len(request.decisions):]
        assert new[0].category == "approval"
        assert new[0].code == ("granted" if v.decision == "approve" else "rejected")
        assert new[0].actor.actor_id == who and new[0].at == self.now
        assert new[0].metadata["approval_round"] == current
        if v.decision == "reject":
            assert new[0].metadata["rejection"]["code"] == (REJECTION["code"] if v.rejection else "rejected")
        event(f"vote applied -> {after.status}")
        self.request = after

    @rule(minutes=st.sampled_from([0, 1, 2, 5, 10, 30]))
    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def sweep(self) -> None:
        request = self.request
        assert request is not None
        due = deadline(request)
        should = request.status is Status.pending and due is not None and due <= self.now
        before = request.model_dump()
        try:
            after = expire(request, self.now)
        except DomainError as exc:
            assert exc.code == "not_due" and not should
            assert request.model_dump() == before
            return
        assert should
        event("expired by sweep")
        assert after.status is Status.expired
        new = [(d.category, d.code) for d in after.decisions[len(request.decisions):]]
        assert new in ([("approval", "expired"), ("lifecycle", "expired")], [("lifecycle", "expired")])
        assert all(r.status != "open" for r in after.requirements)
        self.request = after

    @rule(who=st.sampled_from(["requester", "operator", "stranger"]), now=st.integers(0, 11))
    def cancel(self, who: str, now: int) -> None:
        """Rare (1 in 12 calls acts), so most runs get far enough to approve, reject or expire."""
        request = self.request
        if now:
            return
        assert request is not None
        actor, is_operator = {
            "requester": (REQUESTER, False),
            "operator": (Actor(actor_id="ops", actor_type="administrator"), True),
            "stranger": (Actor(actor_id="p1"), False),
        }[who]
        expected = ("not_authorized" if who == "stranger"
                    else "request_closed" if request.is_terminal else None)
        before = request.model_dump()
        try:
            after = cancel(request, actor, is_operator, "stop", self.now)
        except DomainError as exc:
            assert exc.code == expected
            assert request.model_dump() == before
            return
        assert expected is None
        event(f"canceled from {request.status}")
        assert after.status is Status.canceled and after.decisions[-1].code == "canceled"
        self.request = after

    @rule()
    def renew(self) -> None:
        """Execution found the state moved: a renewed round with fresh requirements (DESIGN §3)."""
        request = self.request
        if request is None or request.status is not Status.approved:
            return
        verdict = Verdict("require_approval", "state moved", "needs-approval", approval=self.approval)
        after = open_round(request, verdict, self.now, base_version=request.base_version + 1)
        assert after.approval_round == request.approval_round + 1
        assert all(not r.voters for r in after.requirements)
        event("renewed")
        self.request = after

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def decision_log_only_grows(self) -> None:
        if self.request is None:
            return
        assert self.request.decisions[: len(self.seen)] == self.seen
        self.seen = self.request.decisions

    @invariant()
    def terminal_is_final(self) -> None:
        if self.request is None:
            return
        now = (self.request.status, self.request.decisions)
        if self.closed is not None:
            assert now == self.closed
        elif self.request.is_terminal:
            self.closed = now

    @invariant()
    def pending_approval_has_one_open_step_in_order(self) -> None:
        request = self.request
        if request is None or not awaiting(request):
            return
        statuses = [r.status for r in request.requirements]
        assert statuses.count("open") == 1
        k = statuses.index("open")
        assert statuses[:k] == ["satisfied"] * k and statuses[k + 1:] == ["waiting"] * (len(statuses) - k - 1)
        # The step's clock started when it opened: at the round start, or when the step before it was satisfied.
        opened_at = self._opened_at(request, k)
        step_expiry = self.approval.steps[k].expires_in
        assert request.requirements[k].expires_at == (opened_at + step_expiry if step_expiry else None)

    @invariant()
    def approved_means_every_step_satisfied_by_qualified_distinct_principals_in_time(self) -> None:
        request = self.request
        if request is None or request.status is not Status.approved:
            return
        round_ = request.approval_round
        assert len(request.requirements) == len(self.approval.steps)
        for r in request.requirements:
            assert r.approval_id.startswith(f"r{round_}-")
            assert r.status == "satisfied"
            assert len(r.approvals) >= r.quorum
            assert len(set(r.approvals)) == len(r.approvals)
            for who in r.approvals:
                assert qualifies(self.population, who, r), (who, r)
                assert who != request.requester.actor_id or self.spec["allow_self_approval"]
            granted = [d for d in request.decisions if d.code == "granted"
                       and d.metadata.get("approval_round") == round_ and d.metadata.get("approval_id") == r.approval_id]
            assert sorted(d.actor.actor_id for d in granted) == sorted(r.approvals)
            for d in granted:
                assert r.expires_at is None or d.at < r.expires_at
                assert request.expires_at is None or d.at < request.expires_at
        if self.spec["separation_of_duties"]:
            counted = [who for r in request.requirements for who in r.approvals]
            assert len(counted) == len(set(counted))

    @staticmethod
    def _opened_at(request: MutationRequest, k: int) -> datetime:
        round_ = request.approval_round
        if k == 0:
            return next(d.at for d in reversed(request.decisions)
                        if d.code == "requested" and d.metadata.get("approval_round") == round_)
        previous = request.requirements[k - 1].approval_id
        return next(d.at for d in request.decisions
                    if d.code == "quorum_satisfied" and d.metadata.get("approval_id") == previous)


VotingMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestVotingWorkflow = VotingMachine.TestCase
