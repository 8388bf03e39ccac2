"""The transition table is the only authority over status changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain import decisions
from services.domain.errors import InvalidTransition
from services.domain.model import TERMINAL, PendingReason, Status
from services.domain.transitions import TRANSITIONS, append, can_transition, transition
from tests.support.factories import NOW, approved, submitted

EXPECTED_TABLE = {
    Status.pending: {Status.pending, Status.approved, Status.rejected, Status.canceled, Status.expired,
                     Status.superseded},
    Status.approved: {Status.pending, Status.executed, Status.rejected, Status.failed, Status.canceled,
                      Status.superseded},
}


def pending_request():
    request = submitted()
    return request.model_copy(update={"status": Status.pending, "pending_reason": PendingReason.approval})


def reason_for(target: Status) -> PendingReason | None:
    return PendingReason.approval if target is Status.pending else None


def test_terminal_statuses_are_everything_but_pending_and_approved() -> None:
    assert set(TERMINAL) == set(Status) - {Status.pending, Status.approved}


def test_table_allows_exactly_the_designed_moves() -> None:
    assert set(TRANSITIONS) == set(Status)
    for status in Status:
        assert set(TRANSITIONS[status]) == EXPECTED_TABLE.get(status, set())


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("target", list(Status))
def test_transition_raises_when_request_is_terminal(terminal: Status, target: Status) -> None:
    request = approved().model_copy(update={"status": terminal})

    assert not can_transition(terminal, target)
    with pytest.raises(InvalidTransition):
        transition(request, target, decisions.lifecycle(target.value, NOW), pending_reason=reason_for(target))


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_append_raises_when_request_is_terminal(terminal: Status) -> None:
    request = approved().model_copy(update={"status": terminal})

    with pytest.raises(InvalidTransition):
        append(request, decisions.lifecycle("note", NOW))


def test_transition_raises_when_pending_has_no_pending_reason() -> None:
    with pytest.raises(InvalidTransition, match="pending reason"):
        transition(approved(), Status.pending, decisions.lifecycle("pending", NOW))


def test_transition_raises_when_non_pending_target_has_a_pending_reason() -> None:
    with pytest.raises(InvalidTransition, match="pending reason"):
        transition(pending_request(), Status.approved, decisions.lifecycle("approved", NOW),
                   pending_reason=PendingReason.approval)


def test_transition_raises_when_pending_jumps_to_executed() -> None:
    with pytest.raises(InvalidTransition):
        transition(pending_request(), Status.executed, decisions.lifecycle("executed", NOW))


def test_transition_appends_decisions_and_clears_pending_reason() -> None:
    request = pending_request()
    later = NOW + timedelta(minutes=5)

    moved = transition(request, Status.approved, decisions.approval("quorum_satisfied", NOW),
                       decisions.lifecycle("approved", later))

    assert moved.status is Status.approved
    assert moved.pending_reason is None
    assert moved.decisions[: len(request.decisions)] == request.decisions
    assert [d.code for d in moved.decisions[len(request.decisions):]] == ["quorum_satisfied", "approved"]
    assert moved.updated_at == later
    assert request.status is Status.pending  # immutable: the original is untouched


def test_append_keeps_status_and_applies_field_changes() -> None:
    request = approved()

    noted = append(request, decisions.resolution("validated", NOW, 0, 0), base_version=7)

    assert noted.status is Status.approved
    assert noted.base_version == 7
    assert noted.decisions[-1].code == "validated"


attempts = st.lists(
    st.tuples(st.sampled_from(list(Status)), st.sampled_from([None, *PendingReason])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(attempts=attempts)
def test_random_transition_sequences_never_leave_terminal_or_the_table(attempts) -> None:
    request = pending_request()
    terminal_reached: Status | None = None
    for target, reason in attempts:
        before = request
        try:
            request = transition(request, target, decisions.lifecycle(target.value, NOW), pending_reason=reason)
        except InvalidTransition:
            assert request is before
        else:
            # Every successful move is in the table, from a non-terminal status, and consistent.
            assert target in TRANSITIONS[before.status]
            assert before.status not in TERMINAL
            assert (request.status is Status.pending) == (request.pending_reason is not None)
            assert request.decisions[:-1] == before.decisions
        assert request.status in Status
        if terminal_reached is not None:
            assert request.status is terminal_reached
            assert request.decisions == before.decisions
        elif request.status in TERMINAL:
            terminal_reached = request.status
