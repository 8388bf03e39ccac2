"""The approver directory: principals, roles, groups and Ed25519 public keys, from YAML and SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.common.settings import Settings
from services.domain.voting import Principal


class DirectoryError(Exception):
    """A directory file that cannot be loaded; raised at start-up."""


class PrincipalRecord(BaseModel):
    """One principal as written in the directory file or the `principal` table."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    name: str | None = None
    roles: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    active: bool = True
    public_key: str | None = Field(None, description="base64 raw 32-byte Ed25519 key (key id 'default')")
    public_keys: dict[str, str] = Field(default_factory=dict, description="key_id -> base64 key")

    @model_validator(mode="after")
    def _some_key(self) -> PrincipalRecord:
        if self.public_key is None and not self.public_keys:
            raise ValueError(f"principal {self.id} has no public key")
        return self

    def keys(self) -> dict[str, str]:
        """Every key by id; `public_key` is the key called `default`."""
        return {**({"default": self.public_key} if self.public_key else {}), **self.public_keys}

    def principal(self) -> Principal:
        """The domain view of this principal."""
        return Principal(principal_id=self.id, name=self.name, roles=frozenset(self.roles),
                         groups=frozenset(self.groups), active=self.active)


@dataclass(frozen=True)
class Directory:
    """Principals from the file; the SQL table's entries are looked up per vote and win."""

    file_entries: dict[str, PrincipalRecord] = field(default_factory=dict)

    def resolve(self, principal_id: str, sql_entry: dict[str, Any] | None) -> PrincipalRecord | None:
        """The principal's record: the SQL row when there is one, else the file's."""
        if sql_entry is not None:
            return PrincipalRecord.model_validate(sql_entry)
        return self.file_entries.get(principal_id)

    def members(self) -> list[PrincipalRecord]:
        """Every principal in the file."""
        return list(self.file_entries.values())


def bundled_directory_path() -> Path:
    """The example directory shipped with the package (its demo keys are in demo-keys/)."""
    return Path(str(files("services.examples") / "directory.yaml"))


def load_directory(settings: Settings) -> Directory:
    """Load the directory file (or the bundled example); a bad file stops start-up."""
    path = settings.directory_file or bundled_directory_path()
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        records = [PrincipalRecord.model_validate(p) for p in doc.get("principals") or []]
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise DirectoryError(f"cannot load approver directory {path}: {exc}") from exc
    return Directory({r.id: r for r in records})
