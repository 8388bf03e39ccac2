"""Builds the mutation registry from the `mutator.mutations` entry points (plugins included)."""

from __future__ import annotations

from importlib.metadata import entry_points

from services.domain.mutation_types import MutationRegistry
from services.mutations.feature_flags import SetFlag
from services.mutations.json_merge import JsonMerge
from services.mutations.json_patch import JsonPatch

BUILT_IN = (JsonPatch, JsonMerge, SetFlag)


def load_registry() -> MutationRegistry:
    """Built-in types plus every installed plugin type."""
    registry = MutationRegistry(cls() for cls in BUILT_IN)
    for ep in entry_points(group="mutator.mutations"):
        registry.register(ep.load()())
    return registry
