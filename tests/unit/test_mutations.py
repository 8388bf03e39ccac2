"""Built-in mutation types (json.patch, json.merge, flags.set) and the document diff."""

from __future__ import annotations

from typing import Any

import pytest

from services.domain.diff import diff, overlaps, pointer
from services.domain.errors import InvalidPayload, MutationNotApplicable
from services.domain.model import Change
from services.mutations.json_merge import merge_patch
from tests.support.factories import registry, state

DOC = {"a": 1, "obj": {"x": 1, "y": [1, 2]}, "list": [1, 2, 3]}


def apply(mutation_type: str, payload: dict[str, Any], data: dict[str, Any] | None = None):
    return registry().get(mutation_type).apply(state(data=DOC if data is None else data), payload)


def patched(*ops: dict[str, Any]) -> dict[str, Any]:
    return apply("json.patch", {"patch": list(ops)}).data


def test_registry_has_the_built_in_types() -> None:
    assert {"json.patch", "json.merge", "flags.set"} <= set(registry().names())


def test_json_patch_add_adds_a_key_and_inserts_into_a_list() -> None:
    assert patched({"op": "add", "path": "/b", "value": {"c": 1}})["b"] == {"c": 1}
    assert patched({"op": "add", "path": "/list/1", "value": 9})["list"] == [1, 9, 2, 3]
    assert patched({"op": "add", "path": "/list/-", "value": 4})["list"] == [1, 2, 3, 4]


def test_json_patch_replace_replaces_a_value() -> None:
    applied = apply("json.patch", {"patch": [{"op": "replace", "path": "/obj/x", "value": 2}]})

    assert applied.data["obj"]["x"] == 2
    assert applied.changes == (Change(op="replace", path="/obj/x", old=1, new=2),)


def test_json_patch_remove_removes_a_key() -> None:
    applied = apply("json.patch", {"patch": [{"op": "remove", "path": "/a"}]})

    assert "a" not in applied.data
    assert applied.changes == (Change(op="remove", path="/a", old=1),)


def test_json_patch_test_passes_silently_when_value_matches() -> None:
    applied = apply("json.patch", {"patch": [{"op": "test", "path": "/a", "value": 1}]})

    assert applied.data == DOC
    assert applied.changes == ()


def test_json_patch_move_moves_a_value() -> None:
    data = patched({"op": "move", "from": "/obj/x", "path": "/moved"})

    assert data["moved"] == 1
    assert "x" not in data["obj"]


def test_json_patch_does_not_mutate_the_input_state() -> None:
    current = state(data={"obj": {"x": 1}})

    registry().get("json.patch").apply(current, {"patch": [{"op": "replace", "path": "/obj/x", "value": 2}]})

    assert current.data == {"obj": {"x": 1}}


@pytest.mark.parametrize(
    "op",
    [
        {"op": "test", "path": "/a", "value": 2},
        {"op": "remove", "path": "/missing"},
        {"op": "replace", "path": "/missing", "value": 1},
        {"op": "add", "path": "/a/b", "value": 1},
        {"op": "move", "from": "/missing", "path": "/b"},
        {"op": "add", "path": "/list/9", "value": 1},
    ],
)
def test_json_patch_raises_not_applicable_when_patch_does_not_apply(op) -> None:
    with pytest.raises(MutationNotApplicable) as caught:
        apply("json.patch", {"patch": [op]})

    assert caught.value.code == "patch_not_applicable"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"patch": "add"},
        {"patch": [{"op": "add", "value": 1}]},
        {"patch": [{"path": "/a"}]},
        {"patch": [{"op": "add", "path": 5, "value": 1}]},
        {"patch": [7]},
    ],
)
def test_json_patch_validate_raises_invalid_payload_when_patch_is_malformed(payload) -> None:
    with pytest.raises(InvalidPayload):
        registry().get("json.patch").validate(state(), payload)


def test_json_patch_touched_paths_include_paths_and_move_sources() -> None:
    patch = [
        {"op": "replace", "path": "/a", "value": 2},
        {"op": "move", "from": "/obj/x", "path": "/b"},
    ]

    assert registry().get("json.patch").touched_paths({"patch": patch}) == {"/a", "/obj/x", "/b"}


def test_json_patch_touched_paths_ignore_a_non_text_from_member() -> None:
    patch = [{"op": "add", "path": "/a", "value": 1, "from": 3}]

    touched = registry().get("json.patch").touched_paths({"patch": patch})

    assert touched == {"/a"}
    assert all(isinstance(p, str) for p in touched)


def test_json_merge_merges_nested_objects_and_null_removes() -> None:
    data = apply("json.merge", {"merge": {"obj": {"x": None, "z": 3}, "a": None, "new": {"k": "v"}}}).data

    assert data == {"obj": {"y": [1, 2], "z": 3}, "list": [1, 2, 3], "new": {"k": "v"}}


def test_json_merge_replaces_lists_whole() -> None:
    assert apply("json.merge", {"merge": {"list": [9]}}).data["list"] == [9]


def test_json_merge_removing_a_missing_key_changes_nothing() -> None:
    assert apply("json.merge", {"merge": {"ghost": None}}).changes == ()


def test_merge_patch_follows_rfc_7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": "foo"}, "bar") == "bar"
    assert merge_patch(["a"], {"a": "b"}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_json_merge_touched_paths_are_top_level_keys() -> None:
    assert registry().get("json.merge").touched_paths({"merge": {"a": 1, "x/y": {"z": 1}}}) == {"/a", "/x~1y"}


def test_json_merge_validate_raises_invalid_payload_when_merge_is_not_an_object() -> None:
    with pytest.raises(InvalidPayload):
        registry().get("json.merge").validate(state(), {"merge": "x"})


def test_flags_set_sets_a_flag_with_default_full_rollout() -> None:
    applied = apply("flags.set", {"flag": "beta", "enabled": True}, data={})

    assert applied.data == {"flags": {"beta": {"enabled": True, "rollout": 100}}}
    assert applied.changes == (Change(op="add", path="/flags", new={"beta": {"enabled": True, "rollout": 100}}),)


def test_flags_set_keeps_other_flags_and_reports_only_what_changed() -> None:
    data = {"flags": {"beta": {"enabled": True, "rollout": 100}, "dark": {"enabled": False, "rollout": 0}}}

    applied = apply("flags.set", {"flag": "beta", "enabled": True, "rollout": 10}, data=data)

    assert applied.data["flags"]["dark"] == {"enabled": False, "rollout": 0}
    assert applied.changes == (Change(op="replace", path="/flags/beta/rollout", old=100, new=10),)


def test_flags_set_touched_path_escapes_the_flag_name() -> None:
    assert registry().get("flags.set").touched_paths({"flag": "a/b~c", "enabled": True}) == {"/flags/a~1b~0c"}


@pytest.mark.parametrize("flags", [[1], "x", None, 3])
def test_flags_set_raises_not_applicable_when_flags_is_not_an_object(flags) -> None:
    with pytest.raises(MutationNotApplicable):
        apply("flags.set", {"flag": "beta", "enabled": True}, data={"flags": flags})


def test_diff_reports_add_remove_and_replace_with_escaped_pointers() -> None:
    old = {"keep": 1, "gone": 2, "a/b": {"m~n": 1}, "list": [1]}
    new = {"keep": 1, "a/b": {"m~n": 2}, "list": [1, 2], "fresh": None}

    assert diff(old, new) == [
        Change(op="replace", path="/a~1b/m~0n", old=1, new=2),
        Change(op="add", path="/fresh", new=None),
        Change(op="remove", path="/gone", old=2),
        Change(op="replace", path="/list", old=[1], new=[1, 2]),
    ]


def test_diff_treats_type_changes_as_replacements() -> None:
    assert diff({"a": 1}, {"a": 1.0}) == [Change(op="replace", path="/a", old=1, new=1.0)]
    assert diff({"a": 1}, {"a": True}) == [Change(op="replace", path="/a", old=1, new=True)]
    assert diff({"a": {"b": 1}}, {"a": [1]}) == [Change(op="replace", path="/a", old={"b": 1}, new=[1])]


def test_diff_is_empty_for_equal_documents() -> None:
    assert diff(DOC, {**DOC}) == []


def test_pointer_escapes_tilde_before_slash() -> None:
    assert pointer(["~1"]) == "/~01"
    assert pointer([]) == ""


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("/a", "/a", True), ("/a", "/a/b", True), ("/a/b", "/a", True), ("/a", "/ab", False),
     ("/a", "/b", False), ("", "/b", True)],
)
def test_overlaps_when_one_pointer_contains_the_other(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected
