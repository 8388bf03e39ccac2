"""The approver directory as the approval handler sees it: YAML file, overridden by the SQL table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts.decisions import ApprovalRefused
from services.common.signing import generate_keypair
from services.store.tables import outbox, principal
from services.store.uow import Store
from tests.support.approval import approval_consumer, seed_review, settings_for, vote_record


@pytest.fixture(autouse=True)
async def forget_alice(store: Store) -> AsyncIterator[None]:
    """The PostgreSQL database is shared by the session: leave no principal rows behind."""
    yield
    async with store.begin() as tx:
        await tx.conn.execute(principal.delete().where(principal.c.principal_id == "alice"))


async def outcome_of(store: Store, vote_message_id: str) -> dict[str, object]:
    """The outbox message caused by a vote (a RequestDecided or an ApprovalRefused)."""
    async with store.begin() as tx:
        rows = (await tx.conn.execute(select(outbox.c.payload))).scalars().all()
    caused = [json.loads(p) for p in rows if json.loads(p).get("causation_id") == vote_message_id]
    assert caused, "the vote produced nothing"
    return caused[0]


async def test_a_principal_in_the_sql_table_replaces_the_files_entry(store: Store, db_url: str,
                                                                     tmp_path: Path) -> None:
    consumer = approval_consumer(store, settings_for(db_url, data_dir=tmp_path))
    request = await seed_review(store)
    private, public = generate_keypair()
    async with store.begin() as tx:  # alice rotated her key: the table has only the new one
        await tx.put_principal({"id": "alice", "name": "Alice", "roles": [], "groups": [], "active": True,
                                "public_keys": {"k2": public}})

    with_file_key = vote_record(request, "alice", 1)
    await consumer.consume([with_file_key])
    with_table_key = vote_record(request, "alice", 2, key=private)
    await consumer.consume([with_table_key])

    refused = await outcome_of(store, json.loads(with_file_key.value or b"")["message_id"])
    accepted = await outcome_of(store, json.loads(with_table_key.value or b"")["message_id"])
    assert refused["message_type"] == ApprovalRefused.__name__ and refused["code"] == "approval.bad_signature"
    assert accepted["message_type"] == "RequestDecided" and accepted["decision"]["code"] == "granted"


async def test_an_inactive_principal_in_the_table_is_refused(store: Store, db_url: str, tmp_path: Path) -> None:
    consumer = approval_consumer(store, settings_for(db_url, data_dir=tmp_path))
    request = await seed_review(store)
    private, public = generate_keypair()
    async with store.begin() as tx:
        await tx.put_principal({"id": "alice", "roles": [], "groups": [], "active": False,
                                "public_keys": {"k": public}})

    vote = vote_record(request, "alice", 1, key=private)
    await consumer.consume([vote])

    refused = await outcome_of(store, json.loads(vote.value or b"")["message_id"])
    assert refused["code"] == "approval.inactive_principal"
