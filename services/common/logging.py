"""structlog setup shared by every service: JSON for machines, console for people."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

from services.common.settings import Settings

# Structured tracebacks without local variables: locals would copy whole batches into every log line.
_TRACEBACKS = structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


def configure_logging(settings: Settings, service: str) -> FilteringBoundLogger:
    """Configure structlog and stdlib logging for `service`; returns a logger bound to it."""
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        # A processor rather than a bound value, so FastStream's and stdlib's records carry it too.
        _constant("service", service),
        _merge_extra,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer = _renderer(settings.log_format)
    final: list[Processor] = (
        [_TRACEBACKS, renderer] if _is_json(renderer) else [renderer]
    )
    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # stderr keeps stdout free for machine-readable output such as `dev up`'s ready line.
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        # Not cached: tests and `dev up` reconfigure, and lazy proxies must pick that up.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(shared, final, level)
    logger: FilteringBoundLogger = structlog.get_logger()  # `service` comes from the processor above
    return logger


def _renderer(log_format: str) -> Processor:
    """JSON unless console is asked for, or `auto` and stderr is a terminal."""
    if log_format == "json" or (log_format == "auto" and not sys.stderr.isatty()):
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer()


def _is_json(renderer: Processor) -> bool:
    """True for the JSON renderer (which needs tracebacks turned into data first)."""
    return isinstance(renderer, structlog.processors.JSONRenderer)


def _route_stdlib(shared: list[Processor], final: list[Processor], level: int) -> None:
    """Render stdlib records (aiokafka, SQLAlchemy, Alembic) through the same processors."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]  # replace, not add: reconfiguring must not duplicate lines
    root.setLevel(level)
    # aiokafka logs every connection hiccup at WARNING/ERROR during rebalances; INFO is noise.
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))


def _constant(key: str, value: str) -> Processor:
    """A processor that sets `key` unless the event already has it."""

    def add(_: Any, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault(key, value)
        return event_dict

    return add


def _merge_extra(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """Flatten FastStream's `extra={...}` (and stdlib's) into top-level keys."""
    extra = event_dict.pop("extra", None)
    if isinstance(extra, MutableMapping):
        for key, value in extra.items():
            event_dict.setdefault(key, value)
    return event_dict
