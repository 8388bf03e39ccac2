"""`mutator dev up`: the embedded stack (broker, Redis, SQLite) and the four services as processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.common import embedded
from services.common.service import READY_MARK
from services.common.settings import Settings
from services.common.topics_admin import ensure_catalog
from services.store.migrate import migrate

SERVICES = ("intake", "approval", "execution", "audit")
READY_TIMEOUT_S = 90.0


@dataclass
class Stack:
    """Everything `dev up` started, so it can be stopped in reverse order."""

    servers: list[embedded.ManagedProcess] = field(default_factory=list)
    services: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    async def stop(self) -> None:
        """Services first (they drain their outboxes), then Redis and the broker."""
        for proc in self.services.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.services.items():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                print(f"{name} did not stop in 15 s; killing it", file=sys.stderr)
                proc.kill()
        for server in reversed(self.servers):
            server.stop()


def _port(url: str, default: int) -> int:
    return urlsplit(url if "//" in url else f"//{url}").port or default


def service_env(settings: Settings) -> dict[str, str]:
    """The environment the service processes get: ours plus the resolved addresses."""
    env = dict(os.environ)
    env.update({
        "MUTATOR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "MUTATOR_REDIS_URL": settings.redis_url,
        "MUTATOR_DATABASE_URL": settings.database_url,
        "MUTATOR_TOPIC_PREFIX": settings.topic_prefix,
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("policies_file", "directory_file"):
        if (value := getattr(settings, name)) is not None:
            env[f"MUTATOR_{name.upper()}"] = str(value.resolve())
    return env


async def start_infrastructure(settings: Settings, stack: Stack) -> None:
    """Broker and Redis (unless pointed elsewhere), migrations, topics."""
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if settings.start_kafka:
        port = _port(settings.kafka_bootstrap, 19092)
        stack.servers.append(embedded.start_tansu(port, log_path=logs / "tansu.log"))
    if settings.start_redis:
        port = _port(settings.redis_url, 16379)
        stack.servers.append(embedded.start_redis(port, data_dir=settings.data_dir, log_path=logs / "redis.log"))
    await migrate(settings.database_url)
    await ensure_catalog(settings)


async def start_services(settings: Settings, stack: Stack) -> None:
    """Start the four services and wait until each reports its partitions assigned."""
    logs = settings.data_dir / "logs"
    waits = []
    for name in SERVICES:
        with (logs / f"{name}.log").open("ab") as log_file:
            # The child gets its own copy of the descriptor; ours closes when the block ends.
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"services.{name}", env=service_env(settings),
                stdout=asyncio.subprocess.PIPE, stderr=log_file, start_new_session=True,
            )
        stack.services[name] = proc
        waits.append(_wait_ready(name, proc))
    await asyncio.wait_for(asyncio.gather(*waits), READY_TIMEOUT_S)


async def _wait_ready(name: str, proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        if line.decode().strip() == f"{READY_MARK} {name}":
            asyncio.get_running_loop().create_task(_drain(proc))
            return
    raise RuntimeError(f"service {name} exited before it was ready (exit {await proc.wait()}); see its log")


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


async def dev_up(settings: Settings) -> int:
    """Run the whole stack until Ctrl-C / SIGTERM or until a service dies; returns the exit code."""
    stack = Stack()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.accept_unsigned_approvals:
        print("WARNING: MUTATOR_ACCEPT_UNSIGNED_APPROVALS is on: unsigned approvals are accepted "
              "(development only)", file=sys.stderr, flush=True)
    try:
        await start_infrastructure(settings, stack)
        await start_services(settings, stack)
        print(f"ready kafka={settings.kafka_bootstrap} redis={settings.redis_url} db={settings.database_url}",
              flush=True)
        died = [asyncio.create_task(p.wait()) for p in stack.services.values()]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*died, stopper], return_when=asyncio.FIRST_COMPLETED)
        if stopper not in done:
            dead = [n for n, p in stack.services.items() if p.returncode is not None]
            print(f"service(s) {', '.join(dead)} exited; stopping the stack (logs in {settings.data_dir}/logs)",
                  file=sys.stderr)
            return 1
        return 0
    finally:
        await stack.stop()
        print("stopped", file=sys.stderr, flush=True)
