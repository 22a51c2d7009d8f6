"""``driftloop alerts tail``: follow the alerts topic, one readable line per alert."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.codec import encode_event
from streams.events import AlertData, AlertEvent
from streams.exceptions import StreamsError
from streams.reader import EventReader

__all__ = ["alerts_app", "format_alert"]

alerts_app = typer.Typer(
    help="Watch the alerts the monitor raises (drift, metric thresholds), firing and resolved.",
    no_args_is_help=True,
)


@alerts_app.callback()
def _alerts() -> None:
    """Watch the alerts the monitor raises (drift, metric thresholds), firing and resolved."""


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def format_alert(alert: AlertData) -> str:
    """One line of rich markup for an alert: time, status, model:version, kind, signal, why.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 3, 1, 9, 30, 5, tzinfo=UTC)
    >>> alert = AlertData(alert_id="a1", model="voice-intent", model_version="3",
    ...     signal="loudness_db", kind="data_drift", pattern="sudden", severity="critical",
    ...     status="firing", detector="ks", statistic=0.41, threshold=0.2, detected_at=t,
    ...     evidence={"start": t, "end": t, "events": 900}, summary="loudness fell by 9 dB")
    >>> from rich.text import Text
    >>> print(Text.from_markup(format_alert(alert)).plain)
    2026-03-01T09:30:05Z FIRING   critical voice-intent:3 data_drift sudden loudness_db \
ks 0.41 vs 0.2 — loudness fell by 9 dB
    """
    style = "green" if alert.status == "resolved" else _SEVERITY_STYLE[alert.severity]
    when = alert.detected_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [
        f"[dim]{when}[/]",
        f"[{style}]{alert.status.upper():<8} {alert.severity:<8}[/]",
        f"[bold]{escape(alert.model)}:{escape(alert.model_version)}[/]",
        alert.kind,
        alert.pattern or "-",
        escape(alert.signal),
        f"{escape(alert.detector)} {alert.statistic:.4g} vs {alert.threshold:.4g}",
    ]
    line = " ".join(parts)
    if alert.summary:
        line += f" — {escape(alert.summary)}"
    return line


@alerts_app.command("tail")
def tail(
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print each alert event as raw JSON, one per line.")
    ] = False,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Only alerts of this model.", show_default=False),
    ] = None,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Start with the oldest alert kept (default: only new ones)."
        ),
    ] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0.1,
            help="Exit after this many seconds without a new alert (default: follow forever).",
            show_default=False,
        ),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
) -> None:
    """Follow the alerts topic: one line per alert, coloured by severity. Ctrl-C stops."""
    settings = settings_with(bootstrap_servers, prefix)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        reader = EventReader(settings, ["alerts"], from_beginning=from_beginning)
    except StreamsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    shown = 0
    try:
        with reader:
            idle = until_idle if until_idle is not None else float("inf")
            for item in reader.items(until_idle_s=idle):
                if item.error is not None:
                    err.print(
                        f"[yellow]skipped[/] offset {item.offset}: {escape(item.error.reason)}"
                    )
                    continue
                event = item.event
                if not isinstance(event, AlertEvent):
                    continue
                if model is not None and event.data.model != model:
                    continue
                if json_lines:
                    typer.echo(encode_event(event).decode())
                else:
                    out.print(format_alert(event.data))
                shown += 1
    except KeyboardInterrupt:
        pass
    except StreamsError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if not json_lines:
        err.print(f"[dim]{shown} alerts[/]")
