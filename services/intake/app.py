"""The intake service: consumes mutation.requests.v1."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.common.policy_files import load_policies
from services.common.service import build_service
from services.common.settings import Settings
from services.intake.handlers import make_handle
from services.mutations.registry import load_registry


def create_app(settings: Settings) -> FastStream:
    """The intake FastStream app."""
    policies, registry = load_policies(settings), load_registry()
    return build_service(settings, service="intake", topics=[topics.REQUESTS],
                         make_handle=lambda rt: make_handle(rt, policies, registry))
