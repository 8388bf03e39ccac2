"""SQL-side CLI commands: a request's status and decision log, a state's document."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.common.settings import Settings
from services.store.db import make_engine
from services.store.uow import Store, Tx

T = TypeVar("T")


async def read(settings: Settings, query: Callable[[Tx], Awaitable[T]]) -> T:
    """Run one read in its own short-lived connection (CLI commands are one-shot processes)."""
    store = Store(make_engine(settings.database_url))
    try:
        async with store.begin(read_only=True) as tx:
            return await query(tx)
    finally:
        await store.engine.dispose()


async def show_request(settings: Settings, request_id: str) -> str | None:
    """The request's status and decision log as text, or None when unknown."""
    request = await read(settings, lambda tx: tx.get_request(request_id))
    if request is None:
        return None
    pending = f" ({request.pending_reason})" if request.pending_reason else ""
    lines = [
        f"request  {request.request_id}",
        f"state    {request.state_id} ({request.state_type}), base version {request.base_version}",
        f"mutation {request.mutation_type} by {request.requester.actor_id}; strategy {request.resolution_strategy}",
        f"status   {request.status}{pending}, revision {request.revision}"
        + (f", resulting version {request.resulting_version}" if request.resulting_version is not None else ""),
    ]
    for req in request.requirements:
        target = ", ".join(req.users) if req.users else (req.role or req.group)
        lines.append(f"  step {req.step}: {target} {len(req.approvals)}/{req.quorum} {req.status}")
    lines.append("decisions:")
    for n, d in enumerate(request.decisions):
        reason = f" — {d.reason}" if d.reason else ""
        lines.append(f"  #{n} {d.at.isoformat()[:23]} {d.category}.{d.code} by {d.actor.actor_id}{reason}")
    return "\n".join(lines)


async def show_state(settings: Settings, state_id: str) -> str | None:
    """The state's version and document as text, or None when it does not exist."""
    state = await read(settings, lambda tx: tx.get_state(state_id))
    if state is None:
        return None
    return f"state {state.state_id} ({state.state_type}) version {state.version}\n" + json.dumps(
        state.data, indent=2, sort_keys=True)
