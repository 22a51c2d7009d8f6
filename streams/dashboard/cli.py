"""``driftloop dashboard``: serve the live dashboard on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.dashboard.chart import CHARTS, DEFAULT_CHARTS
from streams.dashboard.exceptions import DashboardConfigError, DashboardError
from streams.dashboard.service import DashboardService
from streams.dashboard.state import DashboardState

__all__ = ["dashboard", "parse_since"]

err_console = Console(stderr=True, soft_wrap=True)  # messages stay one copyable line

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> timedelta | None:
    """A time span such as ``90s``, ``15m``, ``1h`` or ``2d``; ``all`` means no limit (``None``).

    Examples
    --------
    >>> parse_since("15m"), parse_since("all")
    (datetime.timedelta(seconds=900), None)
    >>> parse_since("an hour")
    Traceback (most recent call last):
    ...
    streams.dashboard.exceptions.DashboardConfigError: --since 'an hour' is not a time span: \
give a number and a unit s, m, h or d (e.g. 30m, 1h, 2d), or 'all'
    """
    if text.strip().lower() == "all":
        return None
    match = _SPAN.match(text)
    if match is None:
        raise DashboardConfigError(
            f"--since {text!r} is not a time span: give a number and a unit s, m, h or d "
            "(e.g. 30m, 1h, 2d), or 'all'"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


async def _serve(service: DashboardService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = await service.start()
    err_console.print(
        f"driftloop dashboard on [bold]{url}[/]\n"
        f"  reading {', '.join(service.feed.topics)} on "
        f"{service.settings.kafka_bootstrap_servers}"
        + (f", from {service.since} ago" if service.since else ", from the beginning")
        + "\n  Ctrl-C to stop",
        highlight=False,
    )
    try:
        await stop.wait()
    finally:
        await service.stop()


def dashboard(
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8090,
    host: Annotated[
        str, typer.Option(help="Address to listen on (keep 127.0.0.1 unless behind a proxy).")
    ] = "127.0.0.1",
    since: Annotated[
        str,
        typer.Option(help="How far back to read at start: e.g. 30m, 1h, 2d, or 'all'."),
    ] = "1h",
    charts: Annotated[
        str,
        typer.Option(
            help="Comma-separated chart names, in order. Registered: "
            + ", ".join(sorted(CHARTS))
            + "."
        ),
    ] = ",".join(DEFAULT_CHARTS),
    max_points: Annotated[
        int, typer.Option(min=2, help="Windows kept per series (older ones are dropped).")
    ] = 360,
) -> None:
    """Serve a live web dashboard of the metrics, alerts and model events on the broker.

    Per model: rolling metrics as time series (latency, loudness, silence,
    null rate, redo/switch rates, error rate…), detector state, the alert
    timeline, model versions and the current traffic split. The page updates
    itself (server-sent events); it needs no internet access.
    """
    settings = settings_with(bootstrap_servers, prefix)
    try:
        span = parse_since(since)
        state = DashboardState(
            [name.strip() for name in charts.split(",") if name.strip()], max_points=max_points
        )
        service = DashboardService(settings, state=state, since=span, host=host, port=port)
        asyncio.run(_serve(service))
    except DashboardError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
