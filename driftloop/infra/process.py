"""What the local Kafka broker and Redis server have in common: a detached process.

A :class:`LocalService` is a server process that driftloop starts on 127.0.0.1,
detached in its own session so that it outlives the command that started it,
and finds again later through a pid file in the state directory. Subclasses
say how to prepare, launch and recognise their process, and when it is ready.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "LOOPBACK",
    "Echo",
    "InfraError",
    "LocalService",
    "MissingToolError",
    "PortInUseError",
    "ServiceStatus",
    "StartupError",
    "port_accepts",
    "port_is_free",
]

LOOPBACK = "127.0.0.1"

Echo = Callable[[str], object]

# Children started by this interpreter, so that they can be reaped when they
# stop (otherwise they linger as zombies that still look alive to kill(pid, 0))
# and so that Popen does not warn about still-running children being dropped.
_children: dict[int, subprocess.Popen[bytes]] = {}


class InfraError(Exception):
    """A local service could not be started, stopped or found; the message says what to do."""


class MissingToolError(InfraError):
    """A program driftloop needs (java, mvn, redis-server) is not installed."""


class PortInUseError(InfraError):
    """A port a local service needs is taken by a process driftloop did not start."""


class StartupError(InfraError):
    """A local service exited or did not become ready while starting."""


@dataclass(frozen=True)
class ServiceStatus:
    """What is known about one local service.

    Parameters
    ----------
    name
        ``"kafka"`` or ``"redis"``.
    running
        True when the process from the pid file is alive and its port accepts
        connections.
    pid
        The live process id, or None when there is no live process.
    address
        ``host:port`` that clients connect to.
    detail
        One human-readable sentence about the state.
    data_dir
        Where the service keeps its data.
    log_file
        Where the service writes its log.
    """

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str
    data_dir: Path | None = None
    log_file: Path | None = None


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind ``host:port`` now.

    SO_REUSEADDR makes ports that only hold TIME_WAIT connections (a server
    that just stopped) count as free, as they do for the servers themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> str | None:
    """The command line of a live, non-zombie process, or None."""
    proc = Path("/proc") / str(pid)
    if proc.is_dir():
        try:
            stat = (proc / "stat").read_text()
            # The state letter follows the parenthesised command name, which may hold spaces.
            if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
                return None
            return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return None
    if Path("/proc/self").exists():
        return None
    # No procfs (macOS): ask ps.
    out = subprocess.run(
        ["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True
    )
    if out.returncode != 0 or not out.stdout.strip():
        return None
    state, _, command = out.stdout.strip().partition(" ")
    return None if state.startswith("Z") else command


def tail(path: Path, lines: int = 40, offset: int = 0) -> str:
    """The last ``lines`` lines of a text file from byte ``offset`` on ('' if absent)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def file_size(path: Path) -> int:
    """Size of a file in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


class LocalService(ABC):
    """A server process on 127.0.0.1 that driftloop starts, finds and stops.

    Subclasses set the class attributes and implement :meth:`prepare`,
    :meth:`command` and :meth:`ready`.
    """

    #: Service name used on the command line and in the API.
    name: str
    #: Seconds to wait after SIGTERM before SIGKILL.
    stop_timeout_s: float = 30.0

    def __init__(self, state_dir: Path, start_timeout_s: float) -> None:
        self.home = state_dir.absolute() / self.name
        self.start_timeout_s = start_timeout_s

    # -- what subclasses provide -----------------------------------------------

    @property
    @abstractmethod
    def ports(self) -> list[tuple[int, str]]:
        """Ports the service binds, each with the environment variable that changes it."""

    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients connect to."""

    @property
    @abstractmethod
    def data_dir(self) -> Path:
        """Where the service keeps its data."""

    @property
    @abstractmethod
    def log_file(self) -> Path:
        """Where the service's output goes."""

    @abstractmethod
    def is_ours(self, cmdline: str) -> bool:
        """Whether a process command line is this service (guards against reused pids)."""

    @abstractmethod
    def prepare(self, echo: Echo) -> None:
        """Make everything the process needs before it is launched (config, data dir)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    @abstractmethod
    def ready(self, log_offset: int) -> bool:
        """Whether the started server is ready; ``log_offset`` is where its log began."""

    def check_tools(self) -> None:  # noqa: B027 (an optional hook, empty by default)
        """Raise :class:`MissingToolError` if a program the service needs is not installed."""

    def explain_failure(self, log_text: str) -> str:
        """Advice to add to a start-up failure, given the new part of the log."""
        if "Address already in use" in log_text or "address already in use" in log_text:
            return self._ports_advice()
        return ""

    # -- the shared machinery ---------------------------------------------------

    @property
    def pid_file(self) -> Path:
        """Where the pid of the running server is kept."""
        return self.home / f"{self.name}.pid"

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        return f"{LOOPBACK}:{self.port}"

    def live_pid(self) -> int | None:
        """The pid of our running server, removing a pid file that no longer names one."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and self._alive(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> ServiceStatus:
        """Whether the server is running, with its pid and address."""
        pid = self.live_pid()
        if pid is not None and port_accepts(self.port):
            running, detail = True, "accepting connections"
        elif pid is not None:
            running, detail = False, f"process alive but {self.address} does not accept connections"
        elif not all(port_is_free(p) for p, _ in self.ports):
            running = False
            detail = "not running; " + self._ports_advice()
        else:
            running, detail = False, "not running"
        return ServiceStatus(
            name=self.name,
            running=running,
            pid=pid,
            address=self.address,
            detail=detail,
            data_dir=self.data_dir,
            log_file=self.log_file,
        )

    def preflight(self) -> None:
        """Check, unless the server runs already, that its programs exist and ports are free."""
        if self.live_pid() is None:
            self._check_ports()
            self.check_tools()

    def start(self, echo: Echo) -> bool:
        """Start the server unless it runs already; True when this call started it."""
        pid = self.live_pid()
        if pid is not None:
            echo(f"{self.name}: already running (pid {pid}, {self.address})")
            return False
        self._check_ports()
        self.check_tools()
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare(echo)
        echo(f"{self.name}: starting on {self.address} (log: {self.log_file})")
        began = time.monotonic()
        offset = file_size(self.log_file)
        proc = self._spawn(self.command())
        self._write_pid(proc.pid)
        try:
            self._wait_ready(proc, offset, echo)
        except BaseException:
            # A half-started server would hold the ports and confuse the next try.
            self._terminate(proc.pid, echo=None)
            self.pid_file.unlink(missing_ok=True)
            raise
        echo(
            f"{self.name}: ready on {self.address} (pid {proc.pid}, "
            f"{time.monotonic() - began:.1f} s)"
        )
        return True

    def stop(self, echo: Echo) -> bool:
        """Stop the server if it runs; True when this call stopped it."""
        pid = self.live_pid()
        if pid is None:
            echo(f"{self.name}: not running")
            return False
        echo(f"{self.name}: stopping (pid {pid})")
        self._terminate(pid, echo=echo)
        self.pid_file.unlink(missing_ok=True)
        echo(f"{self.name}: stopped")
        return True

    def _ports_advice(self) -> str:
        taken = [f"{p} ({var})" for p, var in self.ports if not port_is_free(p)]
        if not taken:
            taken = [f"{p} ({var})" for p, var in self.ports]
        return (
            f"port {' / '.join(taken)} on {LOOPBACK} is in use by a process driftloop did not "
            f"start; stop that process or set the variable in brackets to a free port"
        )

    def _check_ports(self) -> None:
        if len({port for port, _ in self.ports}) != len(self.ports):
            names = " and ".join(var for _, var in self.ports)
            raise InfraError(f"{self.name}: {names} must be different ports")
        for port, var in self.ports:
            if not port_is_free(port):
                raise PortInUseError(
                    f"{self.name}: port {port} on {LOOPBACK} is already in use by a process "
                    f"driftloop did not start; stop it, or set {var} to a free port"
                )

    def _spawn(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log: IO[bytes]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                # Its own session: Ctrl-C in the terminal, or the CLI exiting, leaves it alone.
                start_new_session=True,
            )
        _children[proc.pid] = proc
        return proc

    def _write_pid(self, pid: int) -> None:
        tmp = self.pid_file.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        tmp.replace(self.pid_file)

    def _wait_ready(self, proc: subprocess.Popen[bytes], offset: int, echo: Echo) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                problem = f"exited with code {code} while starting"
                break
            if self.ready(offset):
                return
            if time.monotonic() > deadline:
                problem = f"did not become ready within {self.start_timeout_s:g} s"
                break
            time.sleep(0.2)
        new_log = tail(self.log_file, lines=40, offset=offset)
        if new_log:
            echo(f"--- last lines of {self.log_file} ---\n{new_log}\n---")
        advice = self.explain_failure(new_log)
        raise StartupError(
            f"{self.name} {problem}; " + (advice + "; " if advice else "") + f"see {self.log_file}"
        )

    def _alive(self, pid: int) -> bool:
        child = _children.get(pid)
        if child is not None and child.poll() is not None:
            del _children[pid]
            return False
        cmdline = _cmdline(pid)
        return cmdline is not None and self.is_ours(cmdline)

    def _terminate(self, pid: int, echo: Echo | None) -> None:
        for sig, wait_s in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not self._alive(pid):
                    child = _children.pop(pid, None)
                    if child is not None:
                        # it may have died after _alive's poll(): reap it, or it stays a zombie
                        child.wait(timeout=5)
                    return
                time.sleep(0.1)
            if sig == signal.SIGTERM and echo is not None:
                echo(f"{self.name}: still running {wait_s:g} s after SIGTERM, killing it")
        raise InfraError(f"{self.name}: process {pid} survived SIGKILL; stop it by hand")
