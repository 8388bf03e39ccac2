"""The audit service: consumes every outbound topic."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.audit.handlers import make_handle
from services.common.service import build_service
from services.common.settings import Settings

AUDITED = [topics.DECISIONS, topics.EXECUTIONS, topics.SIDE_EFFECTS, topics.DEAD_LETTER]


def create_app(settings: Settings) -> FastStream:
    """The audit FastStream app. It never dead-letters: unreadable records are audited raw."""
    # The audit log is unique on message_id, so it dedupes redeliveries itself: no processed_message rows.
    return build_service(settings, service="audit", topics=AUDITED, make_handle=make_handle,
                         dead_letter_invalid=False, track_processed=False)
