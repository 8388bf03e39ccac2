"""The parse guard: every inbound record becomes a message or a dead-letter verdict, never a crash."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

from contracts import topics
from contracts.catalog import messages_for
from contracts.deadletter import RAW_LIMIT
from contracts.envelope import MAX_MESSAGE_BYTES
from contracts.requests import MutationRequested
from services.common.inbound import parse, rejected

REQUESTS = messages_for(topics.REQUESTS)


@dataclass(frozen=True)
class FakeRecord:
    topic: str = topics.REQUESTS
    partition: int = 3
    offset: int = 42
    key: bytes | None = b"docs/readme"
    value: bytes | None = b""


def request_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "message_id": "m-1",
        "message_type": "MutationRequested",
        "request_id": "req-1",
        "state_id": "docs/readme",
        "mutation_type": "json.merge",
        "payload": {"merge": {"title": "Hi"}},
        "requester": {"actor_id": "bob"},
        "correlation_id": "corr-1",
    }
    doc.update(overrides)
    return doc


def record(value: bytes | None, **fields: Any) -> FakeRecord:
    return FakeRecord(value=value, **fields)


def encoded(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def test_parse_returns_the_message_when_record_is_valid() -> None:
    item = parse(record(encoded(request_doc())), REQUESTS)

    assert item.code is None
    assert isinstance(item.message, MutationRequested)
    assert item.message.request_id == "req-1"
    assert item.dedupe_id == "m-1"


@pytest.mark.parametrize("value", [b"\xff\xfe garbage", b"{not json", b"", None, b"{} trailing"])
def test_parse_dead_letters_invalid_json_when_bytes_are_not_json(value) -> None:
    item = parse(record(value), REQUESTS)

    assert item.code == "invalid_json"
    assert item.message is None


@pytest.mark.parametrize("doc", [[request_doc()], "text", 42, None])
def test_parse_dead_letters_invalid_json_when_document_is_not_an_object(doc) -> None:
    assert parse(record(encoded(doc)), REQUESTS).code == "invalid_json"


@pytest.mark.parametrize("value", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 50_000 + b"]" * 50_000])
def test_parse_dead_letters_invalid_json_when_nesting_is_too_deep(value: bytes) -> None:
    item = parse(record(value), REQUESTS)

    assert item.code == "invalid_json"


@pytest.mark.parametrize("depth", [900, 5_000])
def test_parse_does_not_raise_when_a_message_nests_deeply(depth: int) -> None:
    value = b'{"message_type": "MutationRequested", "payload": ' + b'{"d": ' * depth + b"1" + b"}" * depth + b"}"

    item = parse(record(value), REQUESTS)

    # Either parsed or dead-lettered with a code; never an exception out of the guard.
    assert (item.message is not None) or item.code in ("invalid_json", "invalid_message")


def test_parse_dead_letters_message_too_large_above_one_mebibyte() -> None:
    value = encoded(request_doc(payload={"merge": {"blob": "x" * MAX_MESSAGE_BYTES}}))

    item = parse(record(value), REQUESTS)

    assert item.code == "message_too_large"
    assert str(len(value)) in (item.reason or "")


def test_parse_accepts_a_message_of_exactly_one_mebibyte() -> None:
    value = encoded(request_doc())
    value += b" " * (MAX_MESSAGE_BYTES - len(value))

    assert parse(record(value), REQUESTS).code is None


@pytest.mark.parametrize("message_type", ["ApprovalSubmitted", "RequestDecided", "Nope", None, 7, ["x"]])
def test_parse_dead_letters_unknown_message_type_when_it_is_not_for_this_topic(message_type) -> None:
    item = parse(record(encoded(request_doc(message_type=message_type))), REQUESTS)

    assert item.code == "unknown_message_type"


def test_parse_dead_letters_unknown_message_type_when_message_type_is_missing() -> None:
    doc = request_doc()
    del doc["message_type"]

    assert parse(record(encoded(doc)), REQUESTS).code == "unknown_message_type"


@pytest.mark.parametrize("missing", ["request_id", "state_id", "mutation_type", "requester"])
def test_parse_dead_letters_invalid_message_when_a_required_field_is_missing(missing: str) -> None:
    doc = request_doc()
    del doc[missing]

    item = parse(record(encoded(doc)), REQUESTS)

    assert item.code == "invalid_message"
    assert missing in (item.reason or "")


def test_parse_dead_letters_invalid_message_when_an_id_has_control_characters() -> None:
    assert parse(record(encoded(request_doc(request_id="a\u0000b"))), REQUESTS).code == "invalid_message"


@pytest.mark.parametrize("key", [b"docs/other", None, b"\xff\xfe"])
def test_parse_dead_letters_key_mismatch_when_key_is_not_the_state_id(key) -> None:
    item = parse(record(encoded(request_doc()), key=key), REQUESTS)

    assert item.code == "key_mismatch"
    assert item.message is not None  # parsed, so the dead letter can carry its ids


def test_parse_ignores_unknown_fields() -> None:
    item = parse(record(encoded(request_doc(from_the_future={"x": 1}))), REQUESTS)

    assert item.code is None


def test_rejected_keeps_raw_bytes_hash_size_and_source_coordinates() -> None:
    value = b"\x00garbage\xff"
    item = parse(record(value), REQUESTS)

    dead = rejected(item)

    assert (dead.source_topic, dead.source_partition, dead.source_offset) == (topics.REQUESTS, 3, 42)
    assert dead.source_key == "docs/readme"
    assert dead.code == "invalid_json"
    assert dead.size == len(value)
    assert dead.sha256 == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(dead.raw) == value
    assert dead.causation_id is None


def test_rejected_truncates_raw_at_64_kib_but_hashes_and_sizes_everything() -> None:
    value = b"x" * (RAW_LIMIT + 1000)
    item = parse(record(value), REQUESTS)

    dead = rejected(item)

    assert base64.b64decode(dead.raw) == value[:RAW_LIMIT]
    assert dead.size == len(value)
    assert dead.sha256 == hashlib.sha256(value).hexdigest()


def test_rejected_of_a_parsed_message_carries_its_ids_and_an_overriding_code() -> None:
    item = parse(record(encoded(request_doc())), REQUESTS)

    dead = rejected(item, code="request_id_conflict", reason="used before")

    assert (dead.code, dead.reason) == ("request_id_conflict", "used before")
    assert dead.causation_id == "m-1"
    assert dead.correlation_id == "corr-1"


def test_rejected_has_no_source_key_when_key_is_absent() -> None:
    assert rejected(parse(record(b"{", key=None), REQUESTS)).source_key is None


def test_dedupe_id_of_garbage_identifies_the_record_position_and_bytes() -> None:
    first = parse(record(b"junk"), REQUESTS)
    same_place_other_bytes = parse(record(b"junk2"), REQUESTS)
    other_place = parse(record(b"junk", offset=43), REQUESTS)

    assert first.dedupe_id == parse(record(b"junk"), REQUESTS).dedupe_id
    assert first.dedupe_id.startswith(f"raw:{topics.REQUESTS}:3:42:")
    assert len({first.dedupe_id, same_place_other_bytes.dedupe_id, other_place.dedupe_id}) == 3


def test_parse_dead_letters_a_message_nested_deeper_than_the_limit() -> None:
    deep: Any = 1
    for _ in range(80):
        deep = {"d": deep}

    item = parse(record(encoded(request_doc(payload={"merge": deep}))), REQUESTS)

    assert item.code == "invalid_message" and "nested deeper" in (item.reason or "")


def test_parse_dead_letters_a_message_without_message_id() -> None:
    doc = request_doc()
    del doc["message_id"]

    item = parse(record(encoded(doc)), REQUESTS)

    assert item.code == "invalid_message" and "message_id" in (item.reason or "")
