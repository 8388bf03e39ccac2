"""`mutator keys generate | approve | reject | pending` commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from contracts.approvals import Rejection
from services.cli import votes
from services.common.settings import Settings
from services.common.signing import generate_keypair

keys = typer.Typer(help="Ed25519 keys for signing approvals.", no_args_is_help=True)
Who = Annotated[str, typer.Option("--as", help="Approver principal id")]
KeyFile = Annotated[Path, typer.Option("--key", help="File with the base64 raw private key")]


@keys.command("generate")
def generate(out: Annotated[Path, typer.Option(help="Where to write the private key")]) -> None:
    """Write a new private key to OUT and print the public key for the directory."""
    private, public = generate_keypair()
    out.write_text(private + "\n")
    out.chmod(0o600)
    typer.echo(f"private key written to {out}\npublic_key: {public}")


def approve(request_id: str, who: Who, key: KeyFile,
            reason: Annotated[str | None, typer.Option(help="Why")] = None,
            key_id: Annotated[str | None, typer.Option(help="Which of your keys")] = None) -> None:
    """Sign and publish an approval of the request's current round."""
    mid = _vote(request_id, who, key, "approve", reason=reason, key_id=key_id)
    typer.echo(f"approval {mid} sent for {request_id}")


def reject(request_id: str, who: Who, key: KeyFile,
           code: Annotated[str, typer.Option(help="Rejection code")],
           reason: Annotated[str, typer.Option(help="Rejection message")],
           category: Annotated[str | None, typer.Option(help="Rejection category")] = None,
           key_id: Annotated[str | None, typer.Option(help="Which of your keys")] = None) -> None:
    """Sign and publish a rejection with a structured reason."""
    rejection = Rejection(code=code, category=category, message=reason)
    mid = _vote(request_id, who, key, "reject", reason=reason, rejection=rejection, key_id=key_id)
    typer.echo(f"rejection {mid} sent for {request_id}")


def pending(principal: Annotated[str, typer.Option("--for", help="Principal id")]) -> None:
    """What this principal can act on now, across users, roles and groups."""
    try:
        rows = asyncio.run(votes.pending_for(Settings(), principal))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    for request, step in rows:
        typer.echo(f"{request.request_id}  {request.state_id}  {request.mutation_type}  round "
                   f"{request.approval_round}  {step}  requested by {request.requester.actor_id}")
    if not rows:
        typer.echo(f"nothing waits for {principal}")


def _vote(request_id: str, who: str, key: Path, decision: str, **options: object) -> str:
    try:
        return asyncio.run(votes.vote(Settings(), request_id, who, key, decision, **options))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
