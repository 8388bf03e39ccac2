"""The two pipelines under test, started as processes: the governed services and the naive baseline hops."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, text

from contracts import topics
from services.cli.devstack import Stack, start_services
from services.common.settings import Settings
from services.common.topics_admin import ensure_catalog, ensure_topics
from services.store.db import make_engine

HERE = Path(__file__).resolve().parent
PARTITIONS = 6
STOP_TIMEOUT_S = 15.0


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    """Resident set size of each live process, in MB."""
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            pass
    return out


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds each live process has used so far."""
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


class Governed:
    """intake, approval, execution and audit as processes, exactly as `mutator dev up` starts them."""

    kind = "governed"

    def __init__(self, kafka: str, redis_url: str, database_url: str, data_dir: Path) -> None:
        self.prefix = f"bg{uuid.uuid4().hex[:6]}."
        self.settings = Settings(
            kafka_bootstrap=kafka,
            redis_url=redis_url,
            database_url=database_url,
            data_dir=data_dir,
            topic_prefix=self.prefix,
            partitions=PARTITIONS,
            start_kafka=False,
            start_redis=False,
        )
        self.stack = Stack()
        self.engine = make_engine(database_url)
        self.start_seq = 0

    @property
    def source(self) -> str:
        return self.settings.topic(topics.REQUESTS)

    @property
    def executed(self) -> str:
        return self.settings.topic(topics.EXECUTIONS)

    executed_type = "MutationExecuted"

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.stack.services.items()}

    async def start(self) -> None:
        (self.settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        await ensure_catalog(self.settings)
        async with self.engine.connect() as conn:
            self.start_seq = (
                await conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_log"))
            ).scalar_one()
        await start_services(self.settings, self.stack)

    async def completed(self) -> int:
        """MutationExecuted rows the audit log holds for this stack's topics."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM audit_log"
                        " WHERE seq > :s AND topic = :t AND message_type = 'MutationExecuted'"
                    ),
                    {"s": self.start_seq, "t": self.executed},
                )
            ).scalar_one()

    async def stop(self) -> None:
        try:
            await self.stack.stop()
        finally:
            await self.engine.dispose()


class Baseline:
    """Three naive hops (A -> hop1 -> B -> hop2 -> C -> hop3), each its own process and table."""

    kind = "baseline"
    executed_type = None

    def __init__(self, kafka: str, database_url: str, data_dir: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.kafka, self.database_url, self.data_dir = kafka, database_url, data_dir
        self.prefix = f"bb{tag}."
        self.topics = [f"{self.prefix}{t}" for t in ("A", "B", "C")]
        self.tables = [f"bench_{tag}_hop{i}" for i in (1, 2, 3)]
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.engine = make_engine(database_url)

    @property
    def source(self) -> str:
        return self.topics[0]

    @property
    def executed(self) -> str:
        return self.topics[2]

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    async def start(self) -> None:
        await ensure_topics(self.kafka, self.topics, PARTITIONS)
        meta = MetaData()
        for name in self.tables:
            Table(
                name,
                meta,
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("message_id", String(200), nullable=False),
                Column("request_id", String(200)),
                Column("payload", Text, nullable=False),
                Column("recorded_at", Float, nullable=False),
            )
        async with self.engine.begin() as conn:
            await conn.run_sync(meta.create_all)
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        waits = []
        for i, table in enumerate(self.tables):
            name = f"hop{i + 1}"
            argv = [
                sys.executable,
                str(HERE / "baseline_hop.py"),
                "--bootstrap",
                self.kafka,
                "--database",
                self.database_url,
                "--group",
                f"{self.prefix}{name}",
                "--source",
                self.topics[i],
                "--table",
                table,
            ]
            if i + 1 < len(self.topics):
                argv += ["--sink", self.topics[i + 1]]
            with open(logs / f"{self.prefix}{name}.log", "ab") as log:  # noqa: ASYNC230 - once per hop, at start
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True
                )
            self.procs[name] = proc
            waits.append(_wait_line(proc, f"bench-hop-ready {self.prefix}{name}"))
        await asyncio.wait_for(asyncio.gather(*waits), 60)

    async def completed(self) -> int:
        """Rows hop3 (the audit-shaped hop) has committed."""
        async with self.engine.connect() as conn:
            return (await conn.execute(text(f"SELECT count(*) FROM {self.tables[2]}"))).scalar_one()

    async def stop(self) -> None:
        try:
            for proc in self.procs.values():
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in self.procs.values():
                try:
                    await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        finally:
            await self.engine.dispose()


async def _wait_line(proc: asyncio.subprocess.Process, want: str) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        if line.decode().strip() == want:
            asyncio.get_running_loop().create_task(_drain(proc))
            return
    raise RuntimeError(f"{want.split()[-1]} exited before it was ready (exit {await proc.wait()})")


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


async def wait_completed(
    pipeline: Governed | Baseline, target: int, timeout: float, poll_s: float = 0.02
) -> float:
    """Poll the pipeline's completion count until it reaches `target`; returns the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while True:
        if await pipeline.completed() >= target:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pipeline.kind}: completion count below {target} after {timeout} s")
        await asyncio.sleep(poll_s)


@dataclass
class Rss:
    """Per-process RSS samples (MB)."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def take(self, pids: dict[str, int]) -> dict[str, float]:
        now = rss_mb(pids)
        for name, mb in now.items():
            self.samples.setdefault(name, []).append(mb)
        return now
