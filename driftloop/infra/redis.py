"""A Redis server on 127.0.0.1, with its append-only file under ``<state_dir>/redis``."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis as redis_client

from driftloop.infra.process import LOOPBACK, Echo, LocalService, MissingToolError
from streams.settings import Settings

__all__ = ["RedisServer", "redis_server_args"]

INSTALL_HINT = "install with: apt-get install redis-server, or run `make deps`"


def redis_server_args(port: int, home: Path) -> list[str]:
    """The ``redis-server`` options of the local server, without the program.

    Parameters
    ----------
    port
        TCP port on 127.0.0.1.
    home
        Directory for the append-only file, log and pid file.

    Returns
    -------
    list[str]
        Options for a foreground server that persists every write to its
        append-only file and takes no RDB snapshots.

    Examples
    --------
    >>> args = redis_server_args(16379, Path("/srv/redis"))
    >>> args[:4]
    ['--bind', '127.0.0.1', '--port', '16379']
    >>> args[args.index("--appendonly") + 1]
    'yes'
    """
    return [
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--dir",
        str(home),
        "--appendonly",
        "yes",
        # The append-only file already keeps every write; snapshots would only duplicate it.
        "--save",
        "",
        "--daemonize",
        "no",
        "--pidfile",
        str(home / "redis.pid"),
        "--logfile",
        str(home / "redis.log"),
    ]


class RedisServer(LocalService):
    """The local Redis server described by a :class:`~streams.settings.Settings`.

    Parameters
    ----------
    settings
        Port, state directory, start timeout.
    """

    name = "redis"
    stop_timeout_s = 15.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir, settings.start_timeout_s)
        self.settings = settings

    @property
    def ports(self) -> list[tuple[int, str]]:
        """The one port, with the variable that changes it."""
        return [(self.settings.redis_port, "DRIFTLOOP_REDIS_PORT")]

    @property
    def port(self) -> int:
        """The client port."""
        return self.settings.redis_port

    @property
    def data_dir(self) -> Path:
        """Where the append-only file lives."""
        return self.home

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.home / "redis.log"

    def is_ours(self, cmdline: str) -> bool:
        """A ``redis-server`` (which rewrites its command line to ``redis-server host:port``)."""
        return "redis-server" in cmdline

    def check_tools(self) -> None:
        """``redis-server``."""
        self._program()

    def prepare(self, echo: Echo) -> None:
        """Make the directory for the append-only file."""
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        """``redis-server`` with :func:`redis_server_args`."""
        return [self._program(), *redis_server_args(self.port, self.home)]

    def ready(self, log_offset: int) -> bool:
        """The server answers PING."""
        client = redis_client.Redis(
            host=LOOPBACK, port=self.port, socket_connect_timeout=0.5, socket_timeout=1.0
        )
        try:
            return bool(client.ping())
        except redis_client.RedisError:
            # Includes BUSY LOADING while a large append-only file is replayed.
            return False
        finally:
            client.close()

    def _program(self) -> str:
        path = shutil.which("redis-server")
        if path is None:
            raise MissingToolError(f"`redis-server` was not found on PATH; {INSTALL_HINT}")
        return path
