"""Loads the policy set: YAML rules (a file, or the bundled example) plus plugin code policies."""

from __future__ import annotations

from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import yaml

from services.common.settings import Settings
from services.domain.errors import PolicyConfigError
from services.domain.policies import CodePolicy, PolicySet, policy_set_from_mapping


def bundled_policies_path() -> Path:
    """The example policy file shipped with the package."""
    return Path(str(files("services.examples") / "policies.yaml"))


def load_policies(settings: Settings) -> PolicySet:
    """The policy set every service evaluates; a bad file stops start-up with a clear error."""
    path = settings.policies_file or bundled_policies_path()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyConfigError(f"cannot read policy file {path}: {exc}") from exc
    code = [CodePolicy(name=ep.name, check=ep.load()) for ep in entry_points(group="mutator.policies")]
    return policy_set_from_mapping(doc, code)
