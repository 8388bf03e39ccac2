"""A policy set: declarative rules and Python callables, composed fail-closed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError

from services.domain.errors import PolicyConfigError
from services.domain.hashing import sha256_hex
from services.domain.policy_model import (
    ApprovalSpec,
    Effect,
    Match,
    PolicyDecision,
    PolicyInput,
    _Spec,
    matches,
)

PolicyCallable = Callable[[PolicyInput], PolicyDecision | None]


class Rule(_Spec):
    """A declarative rule from YAML."""

    name: str
    priority: int = 0
    match: Match = Field(default_factory=Match)
    effect: Effect
    reason: str | None = None
    severity: str = "error"
    approval: ApprovalSpec | None = None

    def decide(self, given: PolicyInput) -> PolicyDecision | None:
        """This rule's decision when it matches, else None."""
        if not matches(self.match, given):
            return None
        return PolicyDecision(
            effect=self.effect, policy=self.name, reason=self.reason, severity=self.severity, approval=self.approval
        )


@dataclass(frozen=True)
class CodePolicy:
    """A Python callable policy with a name and priority."""

    name: str
    check: PolicyCallable
    priority: int = 0

    def decide(self, given: PolicyInput) -> PolicyDecision | None:
        """The callable's decision (None = no opinion)."""
        return self.check(given)


@dataclass(frozen=True)
class Verdict:
    """The composed outcome of a policy set for one request."""

    effect: Effect
    reason: str
    policy: str | None
    approval: ApprovalSpec | None = None
    matched: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicySet:
    """Ordered policies plus a default. Deny beats require_approval beats allow (fail closed)."""

    rules: tuple[Rule | CodePolicy, ...] = ()
    default: Literal["allow", "deny"] = "allow"
    version: str = field(default="")

    def evaluate(self, given: PolicyInput) -> Verdict:
        """Every matching policy, highest priority first, composed into one verdict."""
        decisions = [d for p in self._ordered() if (d := p.decide(given)) is not None]
        names = tuple(d.policy for d in decisions)
        if denied := [d for d in decisions if d.effect == "deny"]:
            first = denied[0]
            return Verdict("deny", first.reason or f"denied by policy {first.policy}", first.policy, matched=names)
        # Fail closed: a (code) policy that requires approval but names no approvers must not allow.
        if unaskable := [d for d in decisions if d.effect == "require_approval" and not d.approval]:
            first = unaskable[0]
            return Verdict("deny", f"policy {first.policy} requires approval but names no approval steps",
                           first.policy, matched=names)
        if required := [d for d in decisions if d.effect == "require_approval"]:
            return Verdict(
                "require_approval",
                "; ".join(d.reason or f"approval required by policy {d.policy}" for d in required),
                required[0].policy,
                approval=merge_approvals([d.approval for d in required if d.approval]),
                matched=names,
            )
        if decisions:
            return Verdict("allow", decisions[0].reason or f"allowed by policy {decisions[0].policy}",
                           decisions[0].policy, matched=names)
        if self.default == "deny":
            return Verdict("deny", "no policy allows this change (default: deny)", None)
        return Verdict("allow", "no policy objects (default: allow)", None)

    def _ordered(self) -> list[Rule | CodePolicy]:
        return sorted(self.rules, key=lambda p: -p.priority)


def merge_approvals(specs: Sequence[ApprovalSpec]) -> ApprovalSpec:
    """Steps of every requiring policy in priority order; the strictest request-level settings."""
    expiries = [s.expires_in for s in specs if s.expires_in is not None]
    return ApprovalSpec(
        steps=tuple(step for s in specs for step in s.steps),
        expires_in=min(expiries) if expiries else None,
        allow_self_approval=all(s.allow_self_approval for s in specs),
        separation_of_duties=any(s.separation_of_duties for s in specs),
    )


def policy_set_from_mapping(doc: Mapping[str, Any], code: Sequence[CodePolicy] = ()) -> PolicySet:
    """Build a PolicySet from the parsed YAML document `{policies: [...], default: allow|deny}`."""
    if not isinstance(doc, Mapping):
        raise PolicyConfigError("a policy file is a mapping with `policies` and `default`")
    default = doc.get("default", "allow")
    if default not in ("allow", "deny"):
        raise PolicyConfigError("default must be allow or deny")
    if not isinstance(doc.get("policies") or [], list):
        raise PolicyConfigError("`policies` must be a list of rules")
    try:
        rules = tuple(Rule.model_validate(r) for r in doc.get("policies") or [])
    except ValidationError as exc:
        raise PolicyConfigError(f"invalid policy: {exc}") from exc
    for rule in rules:
        if rule.effect == "require_approval" and rule.approval is None:
            raise PolicyConfigError(f"policy {rule.name}: require_approval needs an `approval` block")
    version = sha256_hex(
        {"default": default, "rules": [r.model_dump(mode="json") for r in rules], "code": [c.name for c in code]}
    )[:16]
    return PolicySet(rules=(*rules, *code), default=default, version=version)
