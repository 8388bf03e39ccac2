"""The `mutator` command."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts.requests import MutationRequested
from services.cli import approver, client, inspect
from services.common.settings import Settings

app = typer.Typer(help="Mutator: governed mutations of versioned state over Kafka.", no_args_is_help=True)
dev = typer.Typer(help="The embedded development stack.", no_args_is_help=True)
app.add_typer(dev, name="dev")
app.add_typer(approver.keys, name="keys")
app.command()(approver.approve)
app.command()(approver.reject)
app.command()(approver.pending)


@dev.command("up")
def dev_up(
    policies: Annotated[Path | None, typer.Option(help="Policy YAML (default: bundled example)")] = None,
    directory: Annotated[Path | None, typer.Option(help="Approver directory YAML (default: bundled)")] = None,
) -> None:
    """Start broker, Redis, SQLite and the four services; print `ready ...`; stop on Ctrl-C."""
    from services.cli.devstack import dev_up as run

    overrides: dict[str, Any] = {}
    if policies:
        overrides["policies_file"] = policies
    if directory:
        overrides["directory_file"] = directory
    raise typer.Exit(asyncio.run(run(Settings(**overrides))))


@app.command()
def submit(
    file: Annotated[Path | None, typer.Argument(help="MutationRequested JSON (fields as in the contract)")] = None,
    state_id: Annotated[str | None, typer.Option(help="State to change")] = None,
    mutation_type: Annotated[str, typer.Option("--type", help="Mutation type")] = "json.patch",
    payload: Annotated[str, typer.Option(help="Payload JSON")] = "{}",
    request_id: Annotated[str | None, typer.Option(help="Idempotency key (default: new uuid)")] = None,
    requester: Annotated[str, typer.Option(help="Requester actor id")] = "cli-user",
    risk: Annotated[str, typer.Option(help="low|medium|high|critical")] = "low",
    tag: Annotated[list[str] | None, typer.Option(help="Intent tag (repeatable)")] = None,
    expected_version: Annotated[int | None, typer.Option(help="Version the change was written against")] = None,
    reason: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Publish a MutationRequested (from a JSON file, or from flags)."""
    if file is not None:
        doc = json.loads(file.read_text())
    elif state_id is not None:
        doc = {"state_id": state_id, "mutation_type": mutation_type, "payload": json.loads(payload),
               "requester": {"actor_id": requester}, "intent": {"risk_level": risk, "tags": tag or []},
               "expected_version": expected_version, "reason": reason}
    else:
        raise typer.BadParameter("give a JSON file or --state-id")
    doc.setdefault("request_id", request_id or str(uuid.uuid4()))
    message = MutationRequested.model_validate({**doc, "message_type": "MutationRequested"})
    asyncio.run(client.publish(Settings(), message))
    typer.echo(f"submitted {message.request_id} for {message.state_id}")


@app.command()
def watch(
    from_beginning: Annotated[bool, typer.Option(help="Replay from the start of the topics")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events")] = None,
) -> None:
    """Tail decisions, executions and dead letters, one readable line each."""
    asyncio.run(client.watch(Settings(), from_beginning=from_beginning, emit=typer.echo, limit=limit))


@app.command()
def show(request_id: str) -> None:
    """A request's status and decision log."""
    _print_or_fail(asyncio.run(inspect.show_request(Settings(), request_id)), f"no request {request_id}")


@app.command()
def state(state_id: str) -> None:
    """A state's document and version."""
    _print_or_fail(asyncio.run(inspect.show_state(Settings(), state_id)),
                   f"no state {state_id} (version 0: it does not exist yet)")


def _print_or_fail(text: str | None, missing: str) -> None:
    if text is None:
        typer.echo(missing, err=True)
        raise typer.Exit(1)
    typer.echo(text)


@app.command()
def setup() -> None:
    """Migrate the database and create/check the topics (the one-shot job before services start)."""
    from services.common.topics_admin import ensure_catalog
    from services.store.migrate import migrate

    async def run() -> list[str]:
        settings = Settings()
        await migrate(settings.database_url)
        return await ensure_catalog(settings)

    typer.echo(f"migrated; topics ready: {', '.join(asyncio.run(run()))}")


@app.command()
def demo() -> None:
    """Run the scripted scenario against a stack started by `mutator dev up`."""
    from services.cli.demo import main as run_demo

    run_demo(Settings(), typer.echo)
