"""The approval service: consumes mutation.approvals.v1 and mutation.commands.v1; sweeps expiry."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.approval.handlers import make_handle, sweep_expired
from services.common.directory import load_directory
from services.common.service import build_service
from services.common.settings import Settings


def create_app(settings: Settings) -> FastStream:
    """The approval FastStream app."""
    directory = load_directory(settings)
    return build_service(
        settings, service="approval", topics=[topics.APPROVALS, topics.COMMANDS],
        make_handle=lambda rt: make_handle(rt, directory), background=sweep_expired,
        # A vote re-published under the same message_id must be refused as a replay, not
        # silently skipped like a redelivery, so this group dedupes by record position.
        dedupe_by_position=True,
    )
