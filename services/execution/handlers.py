"""Execution: version resolution, then apply under the state's lock with a SQL compare-and-set."""

from __future__ import annotations

from datetime import datetime

import structlog

from contracts.executions import ExecuteApproved
from services.common.consumer import Handle, emit, prefetch
from services.common.inbound import Inbound
from services.common.outbound import decided, executed
from services.common.service import Runtime
from services.domain.execution import execute
from services.domain.model import StateDocument, Status, Strategy
from services.domain.mutation_types import MutationRegistry
from services.domain.policies import PolicySet
from services.store.uow import Tx

log = structlog.get_logger(__name__)


def make_handle(runtime: Runtime, policies: PolicySet, registry: MutationRegistry) -> Handle:
    """The execution batch handler."""
    settings, service = runtime.settings, runtime.service

    async def handle(tx: Tx, items: list[Inbound], now: datetime) -> None:
        await prefetch(tx, items)
        for item in items:
            command = item.message
            assert isinstance(command, ExecuteApproved)
            request = await tx.get_request(command.request_id)
            if request is None or request.status is not Status.approved or request.revision != command.revision:
                # A later revision (canceled, renewed, already executed) voids this command.
                log.info("execute command void", request_id=command.request_id, revision=command.revision,
                         current=None if request is None else (request.status, request.revision))
                continue
            state = await tx.get_state(request.state_id) or StateDocument(
                state_id=request.state_id, state_type=request.state_type)
            changed = []
            if state.version != request.base_version and request.resolution_strategy is Strategy.rebase_if_disjoint:
                changed = await tx.changed_paths_since(request.state_id, request.base_version)
            outcome = execute(request, state, registry, policies, now, changed)
            saved = await tx.save_request(outcome.request, new=False)
            if outcome.state is not None and outcome.applied is not None:
                await tx.save_state(outcome.state, expected_version=state.version, request_id=request.request_id,
                                    changes=list(outcome.applied.changes))
            await emit(tx, service, settings, [
                *decided(request, saved, command.message_id),
                *executed(outcome, state.version, command.message_id, now, settings.document_size_limit),
            ])

    return handle
