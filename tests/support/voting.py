"""Shared principals and helpers of the approval-workflow unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.domain.model import Actor, MutationRequest
from services.domain.voting import CastVote, VoteRefused, cast_vote
from tests.support.factories import NOW, pending_approval, principal, vote

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


def rejected_by_alice() -> MutationRequest:
    """The review request after alice rejected step 1."""
    request = pending_approval()
    return cast_vote(request, vote(request, ALICE, "reject"), NOW)
