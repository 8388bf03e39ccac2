"""The execution service: consumes mutation.internal.execute.v1."""

from __future__ import annotations

from faststream import FastStream

from contracts import topics
from services.cache.lock import StateLocks
from services.common.consumer import Guard
from services.common.policy_files import load_policies
from services.common.service import Runtime, build_service
from services.common.settings import Settings
from services.execution.handlers import make_handle
from services.mutations.registry import load_registry


def create_app(settings: Settings) -> FastStream:
    """The execution FastStream app; per-state Redis locks are held around each transaction."""
    policies, registry = load_policies(settings), load_registry()
    return build_service(
        settings, service="execution", topics=[topics.EXECUTE],
        make_handle=lambda rt: make_handle(rt, policies, registry), guard=state_locks,
    )


def state_locks(runtime: Runtime) -> Guard:
    """Hold the Redis locks of every state in the batch around its transaction."""
    settings = runtime.settings
    locks = StateLocks(runtime.redis, ttl_ms=settings.lock_ttl_ms, prefix=f"mutator:{settings.topic_prefix}")
    return lambda items: locks.hold(i.message.state_id for i in items if i.message is not None)
