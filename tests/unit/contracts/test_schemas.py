"""The wire contract: committed schemas match the models; inbound rules on unknown fields and ids."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from contracts import topics
from contracts.catalog import CATALOG, all_messages, messages_for
from contracts.export import SCHEMA_DIR, rendered
from contracts.requests import MutationRequested

VALID_REQUEST = {
    "message_type": "MutationRequested",
    "request_id": "req-1",
    "state_id": "docs/readme",
    "mutation_type": "json.merge",
    "payload": {"merge": {"title": "Hi"}},
    "requester": {"actor_id": "bob"},
}


def test_committed_schema_files_equal_the_rendered_models() -> None:
    expected = rendered()
    committed = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}

    hint = "contracts/schemas/ drifted from the models: run `make schemas` and commit the result"
    assert sorted(committed) == sorted(expected), hint
    for name, text in expected.items():
        assert committed[name] == text, f"{name}: {hint}"


@pytest.mark.parametrize("model", all_messages(), ids=lambda m: m.__name__)
def test_message_type_is_a_literal_of_the_class_name(model) -> None:
    annotation = model.model_fields["message_type"].annotation

    assert typing.get_origin(annotation) is typing.Literal
    assert typing.get_args(annotation) == (model.__name__,)
    assert model.model_fields["message_type"].default == model.__name__


@pytest.mark.parametrize("model", all_messages(), ids=lambda m: m.__name__)
def test_every_message_lives_on_its_declared_topic(model) -> None:
    assert model.topic in topics.ALL_TOPICS
    assert messages_for(model.topic)[model.__name__] is model


def test_catalog_covers_every_topic() -> None:
    assert set(CATALOG) == set(topics.ALL_TOPICS)


def test_unknown_fields_are_ignored() -> None:
    message = MutationRequested.model_validate(
        {**VALID_REQUEST, "added_in_v1_1": {"x": 1}, "intent": {"future_field": True},
         "requester": {"actor_id": "bob", "department": "ops"}}
    )

    assert message.request_id == "req-1"
    assert "added_in_v1_1" not in message.wire()
    assert "future_field" not in message.wire()["intent"]
    assert "department" not in message.wire()["requester"]


def test_message_round_trips_through_wire_bytes() -> None:
    message = MutationRequested.model_validate(VALID_REQUEST)

    assert MutationRequested.model_validate_json(message.to_json()) == message


@pytest.mark.parametrize("field", ["request_id", "state_id", "message_id", "correlation_id"])
@pytest.mark.parametrize("bad", ["x" * 201, "", "a\x00b", "line\nbreak", "tab\there", "esc\x1b", "del\x7f"])
def test_ids_that_are_too_long_or_contain_control_characters_are_refused(field: str, bad: str) -> None:
    with pytest.raises(ValidationError):
        MutationRequested.model_validate({**VALID_REQUEST, field: bad})


def test_ids_of_200_printable_characters_are_accepted() -> None:
    message = MutationRequested.model_validate({**VALID_REQUEST, "request_id": "é" * 200, "state_id": "a b/c"})

    assert len(message.request_id) == 200
