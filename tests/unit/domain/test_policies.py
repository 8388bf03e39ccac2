"""Declarative and code policies: matching, ordering, composition, loading, versioning."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from services.domain.errors import PolicyConfigError
from services.domain.model import Actor, BlastRadius, Intent
from services.domain.policies import CodePolicy, PolicySet
from services.domain.policy_model import PolicyDecision, PolicyInput
from tests.support.factories import REVIEW_YAML, policies, state


def given_input(**overrides: Any) -> PolicyInput:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "state_id": "docs/readme",
        "state_type": "document",
        "mutation_type": "json.merge",
        "payload": {"merge": {}},
        "intent": Intent(),
        "requester": Actor(actor_id="bob"),
        "state": state(),
    }
    fields.update(overrides)
    return PolicyInput(**fields)


def one_rule(match: dict[str, Any], effect: str = "deny", **extra: Any) -> PolicySet:
    return policies({"policies": [{"name": "r", "match": match, "effect": effect, **extra}], "default": "allow"})


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ({"mutation_types": ["json.patch", "flags.set"]}, {"mutation_type": "flags.set"},
         {"mutation_type": "json.merge"}),
        ({"categories": ["billing"]}, {"intent": Intent(category="billing")}, {"intent": Intent(category="docs")}),
        ({"categories": ["billing"]}, {"intent": Intent(category="billing")}, {"intent": Intent()}),
        ({"state_types": ["feature-flags"]}, {"state_type": "feature-flags"}, {"state_type": "document"}),
        ({"state_ids": ["flags/*"]}, {"state_id": "flags/checkout"}, {"state_id": "docs/flags/x"}),
        ({"state_ids": ["flags/?"]}, {"state_id": "flags/a"}, {"state_id": "flags/ab"}),
        ({"state_ids": ["Flags/*"]}, {"state_id": "Flags/a"}, {"state_id": "flags/a"}),  # case-sensitive
        ({"min_risk": "high"}, {"intent": Intent(risk_level="critical")}, {"intent": Intent(risk_level="medium")}),
        ({"min_risk": "high"}, {"intent": Intent(risk_level="high")}, {"intent": Intent(risk_level="unknown")}),
        ({"min_blast_radius": "system"}, {"intent": Intent(blast_radius=BlastRadius(scope="global"))},
         {"intent": Intent(blast_radius=BlastRadius(scope="module"))}),
        ({"tags_any": ["prod", "eu"]}, {"intent": Intent(tags=("eu",))}, {"intent": Intent(tags=("dev",))}),
        ({"tags_all": ["prod", "eu"]}, {"intent": Intent(tags=("eu", "prod", "x"))},
         {"intent": Intent(tags=("prod",))}),
        ({"metadata": {"team": "core"}}, {"intent": Intent(metadata={"team": "core", "x": 1})},
         {"intent": Intent(metadata={"team": "web"})}),
        ({"actor_types": ["service"]}, {"requester": Actor(actor_id="ci", actor_type="service")},
         {"requester": Actor(actor_id="bob", actor_type="user")}),
    ],
)
def test_rule_matches_only_when_its_condition_holds(match, hit, miss) -> None:
    policy_set = one_rule(match)

    assert policy_set.evaluate(given_input(**hit)).effect == "deny"
    assert policy_set.evaluate(given_input(**miss)).effect == "allow"


def test_rule_matches_only_when_all_conditions_hold() -> None:
    policy_set = one_rule({"state_ids": ["flags/*"], "min_risk": "high"})

    assert policy_set.evaluate(given_input(state_id="flags/a", intent=Intent(risk_level="high"))).effect == "deny"
    assert policy_set.evaluate(given_input(state_id="flags/a")).effect == "allow"
    assert policy_set.evaluate(given_input(intent=Intent(risk_level="high"))).effect == "allow"


def test_empty_match_matches_everything() -> None:
    assert one_rule({}).evaluate(given_input()).effect == "deny"


def test_higher_priority_policy_decides_first_among_the_same_effect() -> None:
    policy_set = policies({"policies": [
        {"name": "low", "priority": 1, "match": {}, "effect": "deny", "reason": "low says no"},
        {"name": "high", "priority": 50, "match": {}, "effect": "deny", "reason": "high says no"},
    ]})

    verdict = policy_set.evaluate(given_input())

    assert (verdict.policy, verdict.reason) == ("high", "high says no")
    assert verdict.matched == ("high", "low")


def test_deny_beats_require_approval_and_allow_whatever_the_priority() -> None:
    policy_set = policies({"policies": [
        {"name": "allow", "priority": 100, "match": {}, "effect": "allow"},
        {"name": "review", "priority": 50, "match": {}, "effect": "require_approval",
         "approval": {"steps": [{"users": ["alice"]}]}},
        {"name": "deny", "priority": 1, "match": {}, "effect": "deny"},
    ]})

    verdict = policy_set.evaluate(given_input())

    assert (verdict.effect, verdict.policy) == ("deny", "deny")
    assert verdict.reason == "denied by policy deny"


def test_require_approval_beats_allow_and_merges_steps_in_priority_order() -> None:
    policy_set = policies({"policies": [
        {"name": "allow", "priority": 100, "match": {}, "effect": "allow"},
        {"name": "second", "priority": 10, "match": {}, "effect": "require_approval",
         "approval": {"expires_in": "30m", "steps": [{"role": "admin"}]}},
        {"name": "first", "priority": 20, "match": {}, "effect": "require_approval",
         "approval": {"expires_in": "2h", "steps": [{"users": ["alice"]}]}},
    ]})

    verdict = policy_set.evaluate(given_input())

    assert (verdict.effect, verdict.policy) == ("require_approval", "first")
    assert verdict.approval is not None
    assert [s.users or s.role for s in verdict.approval.steps] == [("alice",), "admin"]
    assert verdict.approval.expires_in == timedelta(minutes=30)  # the strictest


def test_matching_allow_wins_over_default_deny() -> None:
    policy_set = policies({"policies": [{"name": "ok", "match": {}, "effect": "allow"}], "default": "deny"})

    assert policy_set.evaluate(given_input()).effect == "allow"


@pytest.mark.parametrize(("default", "effect"), [("allow", "allow"), ("deny", "deny")])
def test_default_applies_when_no_policy_matches(default: str, effect: str) -> None:
    policy_set = policies({"policies": [{"name": "x", "match": {"state_ids": ["nope/*"]}, "effect": "deny"}],
                           "default": default})

    verdict = policy_set.evaluate(given_input())

    assert (verdict.effect, verdict.policy, verdict.matched) == (effect, None, ())


def test_issue_yaml_loads_into_a_three_step_approval() -> None:
    policy_set = policies(REVIEW_YAML)

    (rule,) = policy_set.rules
    assert (rule.name, rule.priority, rule.effect) == ("prod-flags-need-review", 100, "require_approval")
    assert rule.match.state_ids == ("flags/*",)
    assert (rule.match.min_risk, rule.match.tags_any) == ("high", ("prod",))
    assert policy_set.default == "allow"
    approval = rule.approval
    assert approval is not None and approval.expires_in == timedelta(hours=1)
    users, group, role = approval.steps
    assert (users.users, users.quorum, users.expires_in) == (("alice",), 1, None)
    assert (group.group, group.quorum, group.expires_in) == ("security", 2, timedelta(minutes=30))
    assert role.role == "finance-approver"


def test_issue_yaml_requires_approval_for_risky_prod_flags_only() -> None:
    policy_set = policies(REVIEW_YAML)
    risky = Intent(risk_level="high", tags=("prod",))

    assert policy_set.evaluate(given_input(state_id="flags/checkout", intent=risky)).effect == "require_approval"
    assert policy_set.evaluate(given_input(state_id="docs/checkout", intent=risky)).effect == "allow"
    assert policy_set.evaluate(given_input(state_id="flags/checkout", intent=Intent(tags=("prod",)))).effect \
        == "allow"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"policies": [{"name": "x", "effect": "require_approval"}]}, "approval"),
        ({"policies": [{"name": "x", "effect": "require_approval",
                        "approval": {"steps": [{"users": ["a"], "role": "admin"}]}}]}, "exactly one"),
        ({"policies": [{"name": "x", "effect": "require_approval",
                        "approval": {"steps": [{}]}}]}, "exactly one"),
        ({"policies": [{"name": "x", "effect": "require_approval",
                        "approval": {"steps": []}}]}, "steps"),
        ({"policies": [{"name": "x", "effect": "require_approval",
                        "approval": {"expires_in": "soon", "steps": [{"users": ["a"]}]}}]}, "duration"),
        ({"policies": [{"name": "x", "effect": "require_approval",
                        "approval": {"steps": [{"group": "g", "expires_in": "5 weeks"}]}}]}, "duration"),
        ({"policies": [{"name": "x", "effect": "maybe"}]}, "effect"),
        ({"policies": [{"name": "x", "effect": "deny", "match": {"min_risk": "huge"}}]}, "min_risk"),
        ({"policies": [{"name": "x", "effect": "deny", "match": {"state_id": ["typo"]}}]}, "state_id"),
        ({"policies": [{"name": "x", "effect": "deny", "match": {"min_blast_radius": "planet"}}]},
         "min_blast_radius"),
        ({"policies": [], "default": "maybe"}, "default"),
        ({"policies": 5}, "policies"),
        (["not", "a", "mapping"], "mapping"),
    ],
)
def test_bad_policy_file_raises_policy_config_error(doc, message: str) -> None:
    with pytest.raises(PolicyConfigError, match=message):
        policies(doc)


def test_policy_version_changes_when_rules_change() -> None:
    base = yaml.safe_load(REVIEW_YAML)
    tweaked = yaml.safe_load(REVIEW_YAML)
    tweaked["policies"][0]["approval"]["steps"][1]["quorum"] = 3

    assert policies(base).version == policies(yaml.safe_load(REVIEW_YAML)).version
    assert policies(base).version != policies(tweaked).version
    assert policies(base).version != policies({**base, "default": "deny"}).version
    assert len(policies(base).version) == 16


def test_policy_version_changes_when_code_policies_change() -> None:
    code = CodePolicy(name="no-fridays", check=lambda given: None)

    assert policies(REVIEW_YAML).version != policies(REVIEW_YAML, code=(code,)).version


def test_code_policy_participates_in_composition_by_priority() -> None:
    def deny_flags(given: PolicyInput) -> PolicyDecision | None:
        if given.state_id.startswith("flags/"):
            return PolicyDecision(effect="deny", policy="no-flags", reason="flags are frozen")
        return None

    policy_set = policies(REVIEW_YAML, code=(CodePolicy(name="no-flags", check=deny_flags, priority=5),))
    risky = Intent(risk_level="high", tags=("prod",))

    denied = policy_set.evaluate(given_input(state_id="flags/checkout", intent=risky))
    assert (denied.effect, denied.policy, denied.reason) == ("deny", "no-flags", "flags are frozen")
    assert denied.matched == ("prod-flags-need-review", "no-flags")
    assert policy_set.evaluate(given_input()).effect == "allow"


def test_code_policy_sees_the_current_state() -> None:
    def deny_big(given: PolicyInput) -> PolicyDecision | None:
        return PolicyDecision(effect="deny", policy="size") if len(given.state.data) > 1 else None

    policy_set = policies(code=(CodePolicy(name="size", check=deny_big),))

    assert policy_set.evaluate(given_input(state=state(data={"a": 1, "b": 2}))).effect == "deny"
    assert policy_set.evaluate(given_input(state=state(data={"a": 1}))).effect == "allow"


def test_require_approval_without_steps_from_code_fails_closed() -> None:
    # A code policy cannot be checked at load time; a require_approval with nothing to ask must not allow.
    def broken(given: PolicyInput) -> PolicyDecision:
        return PolicyDecision(effect="require_approval", policy="broken")

    policy_set = policies(code=(CodePolicy(name="broken", check=broken),))

    verdict = policy_set.evaluate(given_input())

    assert verdict.effect == "deny"
    assert verdict.policy == "broken"
