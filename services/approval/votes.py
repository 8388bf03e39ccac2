"""Who sent a vote: signature, principal, replay and clock checks, in the order DESIGN §4 lists."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.approvals import ApprovalSubmitted
from services.common.directory import Directory, PrincipalRecord
from services.common.inbound import Inbound
from services.common.settings import Settings
from services.common.signing import verify
from services.domain.voting import Principal, VoteRefused
from services.store.uow import Tx

VOTE_IDS = "approval.votes"  # processed_message group holding every authentic vote's message_id


@dataclass(frozen=True)
class Authenticated:
    """A vote whose signature, principal, freshness and uniqueness were checked."""

    principal: Principal
    vote: ApprovalSubmitted


async def authenticate(tx: Tx, item: Inbound, directory: Directory, settings: Settings,
                       now: datetime) -> Authenticated:
    """Raise VoteRefused with the first failing check's code; else the principal behind the vote."""
    vote = item.message
    assert isinstance(vote, ApprovalSubmitted)
    record = directory.resolve(vote.approver_id, await tx.get_principal(vote.approver_id))
    if vote.signature is None:
        if not settings.accept_unsigned_approvals:
            raise VoteRefused("the vote is not signed", "approval.unsigned")
    else:
        _check_signature(item, vote, record)
    if record is None:
        raise VoteRefused(f"{vote.approver_id} is not in the approver directory", "approval.unknown_principal")
    if not record.active:
        raise VoteRefused(f"{vote.approver_id} is not active", "approval.inactive_principal")
    if await tx.processed(VOTE_IDS, [vote.message_id]):
        raise VoteRefused(f"vote {vote.message_id} was already received", "approval.replay")
    await tx.mark_processed(VOTE_IDS, vote.message_id)
    skew = timedelta(seconds=settings.approval_clock_skew_s)
    if vote.signature is not None and (vote.signed_at is None or abs(vote.signed_at - now) > skew):
        raise VoteRefused(f"signed_at must be within {settings.approval_clock_skew_s} s of now",
                          "approval.clock_skew")
    return Authenticated(record.principal(), vote)


def _check_signature(item: Inbound, vote: ApprovalSubmitted, record: PrincipalRecord | None) -> None:
    signature = vote.signature or ""
    try:
        well_formed = len(base64.b64decode(signature, validate=True)) == 64
    except binascii.Error:
        well_formed = False
    if not well_formed:
        raise VoteRefused("the signature is not base64 of 64 bytes", "approval.bad_signature")
    if record is None:
        raise VoteRefused(f"{vote.approver_id} is not in the approver directory", "approval.unknown_principal")
    keys = record.keys()
    candidates = [keys[vote.key_id]] if vote.key_id in keys else ([] if vote.key_id else list(keys.values()))
    # The object exactly as received: unknown fields are signed too.
    received = json.loads(item.record.value or b"{}")
    if not any(verify(received, signature, key) for key in candidates):
        raise VoteRefused("the signature does not verify with the approver's key", "approval.bad_signature")
