"""Start, stop and inspect the local Kafka broker and Redis server, without Docker.

Both run on 127.0.0.1 as detached processes with their data, logs and pid files
under ``settings.state_dir``; the Kafka jars are fetched once from Maven
Central into ``settings.cache_dir``.

Examples
--------
The services are named in a fixed order, which :func:`up` follows and
:func:`down` reverses:

>>> SERVICES
('kafka', 'redis')
"""

from __future__ import annotations

from collections.abc import Iterable

from driftloop.infra.kafka import KafkaBroker
from driftloop.infra.process import (
    Echo,
    InfraError,
    LocalService,
    MissingToolError,
    PortInUseError,
    ServiceStatus,
    StartupError,
)
from driftloop.infra.redis import RedisServer
from streams.settings import Settings

__all__ = [
    "SERVICES",
    "InfraError",
    "MissingToolError",
    "PortInUseError",
    "ServiceStatus",
    "StartupError",
    "down",
    "preflight",
    "status",
    "up",
]

#: Every local service, in start order.
SERVICES: tuple[str, ...] = ("kafka", "redis")

_KINDS: dict[str, type[KafkaBroker] | type[RedisServer]] = {
    "kafka": KafkaBroker,
    "redis": RedisServer,
}


def _select(settings: Settings, services: Iterable[str]) -> list[LocalService]:
    wanted = list(dict.fromkeys(services))
    unknown = [name for name in wanted if name not in _KINDS]
    if unknown:
        raise InfraError(
            f"unknown service {', '.join(map(repr, unknown))}; choose from {', '.join(SERVICES)}"
        )
    return [_KINDS[name](settings) for name in SERVICES if name in wanted]


def up(settings: Settings, services: Iterable[str] = SERVICES, *, echo: Echo = print) -> list[str]:
    """Start the local services that are not running yet.

    Parameters
    ----------
    settings
        Ports, directories, Kafka version, heap and start timeout.
    services
        Names among ``"kafka"``, ``"redis"``; started in that order.
    echo
        Receives progress messages, one line each.

    Returns
    -------
    list[str]
        The services this call started; those that were already running are
        left alone and not listed.

    Raises
    ------
    InfraError
        When a service cannot start (a missing program, a port taken by another
        process, a crash or time-out while starting). A service that failed is
        not left running, but those started before it in the same call are:
        call :func:`down` for them.
    """
    chosen = _select(settings, services)
    # Fail before starting anything rather than after Kafka's few seconds of start-up.
    preflight(settings, [svc.name for svc in chosen])
    return [svc.name for svc in chosen if svc.start(echo)]


def preflight(settings: Settings, services: Iterable[str] = SERVICES) -> None:
    """Check that the services not running yet could start: programs installed, ports free.

    :func:`up` does this itself; call it to fail early when starting services
    one call at a time.

    Parameters
    ----------
    settings
        Ports, directories and Kafka version.
    services
        Names among ``"kafka"``, ``"redis"``.

    Raises
    ------
    MissingToolError
        When ``java``, ``mvn`` (needed only until the Kafka jars are cached) or
        ``redis-server`` is missing.
    PortInUseError
        When a port is taken by a process driftloop did not start.
    """
    for svc in _select(settings, services):
        svc.preflight()


def down(
    settings: Settings, services: Iterable[str] = SERVICES, *, echo: Echo = print
) -> list[str]:
    """Stop the local services that are running.

    Kafka gets SIGTERM (a controlled shutdown) and SIGKILL if it has not exited
    within 30 s; Redis gets SIGTERM, on which it flushes its append-only file.

    Parameters
    ----------
    settings
        Where the pid files are.
    services
        Names among ``"kafka"``, ``"redis"``; stopped in reverse start order.
    echo
        Receives progress messages, one line each.

    Returns
    -------
    list[str]
        The services this call stopped.
    """
    return [svc.name for svc in reversed(_select(settings, services)) if svc.stop(echo)]


def status(settings: Settings) -> dict[str, ServiceStatus]:
    """Report each local service's state without changing anything but stale pid files.

    Parameters
    ----------
    settings
        Where the pid files are and which ports to probe.

    Returns
    -------
    dict[str, ServiceStatus]
        One entry per service, in start order.
    """
    return {svc.name: svc.status() for svc in _select(settings, SERVICES)}
