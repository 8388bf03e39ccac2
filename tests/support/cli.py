"""Run the real `mutator` command (and other programs) as subprocesses, with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

import psutil

from services.common.embedded import free_port

REPO = Path(__file__).resolve().parents[2]
MUTATOR = str(Path(sys.executable).with_name("mutator"))
KEYS = REPO / "services" / "examples" / "demo-keys"


@dataclass
class Env:
    """The working directory and environment of one user session of the CLI."""

    cwd: Path
    kafka: str
    redis: str
    database: str

    @classmethod
    def fresh(cls, cwd: Path) -> Env:
        """Free ports for the embedded broker and Redis, a SQLite file in `cwd`."""
        return cls(cwd, f"127.0.0.1:{free_port()}", f"redis://127.0.0.1:{free_port()}/0",
                   f"sqlite+aiosqlite:///{cwd / 'mutator.db'}")

    @property
    def ports(self) -> tuple[int, int]:
        """(broker port, Redis port)."""
        return int(self.kafka.rsplit(":", 1)[1]), int(self.redis.rsplit(":", 1)[1].split("/")[0])

    def vars(self) -> dict[str, str]:
        """os.environ without any MUTATOR_* of the caller, plus this session's settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUTATOR_")}
        env.update(MUTATOR_KAFKA_BOOTSTRAP=self.kafka, MUTATOR_REDIS_URL=self.redis,
                   MUTATOR_DATABASE_URL=self.database, MUTATOR_DATA_DIR=str(self.cwd / "var"),
                   PYTHONUNBUFFERED="1")
        return env

    def run(self, *args: str, timeout: float = 60, program: str = MUTATOR,
            ) -> subprocess.CompletedProcess[str]:
        """Run one command to completion (killed after `timeout`); output captured as text."""
        return subprocess.run([program, *args], check=False, cwd=self.cwd, env=self.vars(),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def ok(self, *args: str, timeout: float = 60, program: str = MUTATOR) -> str:
        """Run a command that must exit 0; its stdout."""
        done = self.run(*args, timeout=timeout, program=program)
        assert done.returncode == 0, f"{args} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def poll(self, args: tuple[str, ...], until: Callable[[str], bool], timeout: float = 30) -> str:
        """Repeat a command until its stdout satisfies `until`; the last stdout (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            done = self.run(*args)
            out = done.stdout + done.stderr
            if done.returncode == 0 and until(done.stdout):
                return done.stdout
            time.sleep(0.3)
        raise AssertionError(f"`mutator {' '.join(args)}` not as expected within {timeout} s; last:\n{out}")

    @contextmanager
    def popen(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """A long-running command, stdout piped, stderr to `<cwd>/<command>.stderr`; stopped at exit."""
        with (self.cwd / f"{args[0]}.stderr").open("a") as err:
            proc = subprocess.Popen([MUTATOR, *args], cwd=self.cwd, env=self.vars(), stdout=subprocess.PIPE,
                                    stderr=err, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            yield proc
        finally:
            stop(proc, signal.SIGKILL, timeout=10)


def read_until(proc: subprocess.Popen[str], match: Callable[[str], bool],
               timeout: float) -> tuple[str, list[str]]:
    """Read stdout lines until one satisfies `match`; (that line, all lines read). Fails after `timeout`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    queue = _lines(proc)
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = queue.get(timeout=left)
        except Empty:
            break
        if line is None:
            break
        lines.append(line)
        if match(line):
            return line, lines
    read = "\n".join(lines)
    raise AssertionError(f"no matching line within {timeout} s (exit {proc.poll()}); read:\n{read}")


_readers: weakref.WeakKeyDictionary[subprocess.Popen[str], Queue[str | None]] = (
    weakref.WeakKeyDictionary())


def _lines(proc: subprocess.Popen[str]) -> Queue[str | None]:
    """One reader thread per process, so a blocking readline never outlives a bounded wait."""
    if proc not in _readers:
        queue: Queue[str | None] = Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                queue.put(line.rstrip("\n"))
            queue.put(None)

        threading.Thread(target=pump, daemon=True).start()
        _readers[proc] = queue
    return _readers[proc]


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM,
         timeout: float = 30) -> tuple[int | None, list[str]]:
    """Signal a process we started and wait (SIGKILL after `timeout`); then SIGKILL anything it started
    that is still alive. Returns (exit code, command lines of those leftovers)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    leftovers = []
    for child in family:
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                leftovers.append(" ".join(child.cmdline()))
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)
    return proc.returncode, leftovers
