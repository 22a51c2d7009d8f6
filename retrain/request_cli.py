"""``driftloop retrain request``: ask for a new model version by hand."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from producers.exceptions import ProducersError
from producers.publisher import Publisher
from streams.alerting.rules import parse_duration
from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.events import DataWindow, RetrainRequestData, validation_errors
from streams.exceptions import StreamsError

__all__ = ["parse_time", "retrain_app"]

retrain_app = typer.Typer(
    help="Ask the retrain worker for a new model version.",
    no_args_is_help=True,
)


@retrain_app.callback()
def _retrain() -> None:
    """Ask the retrain worker for a new model version."""


def parse_time(text: str, *, now: datetime) -> datetime:
    """An event time from ``now``, a duration ago (``2h``, ``30m``, ``1d``) or an ISO 8601 time.

    A time without a UTC offset is taken as UTC.

    Examples
    --------
    >>> now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> parse_time("2h", now=now).isoformat()
    '2026-03-01T10:00:00+00:00'
    >>> parse_time("2026-03-01T08:15:00+01:00", now=now).isoformat()
    '2026-03-01T07:15:00+00:00'
    >>> parse_time("yesterday", now=now)
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'yesterday' as a time: give 'now', a duration ago such as 2h, 30m, \
1d, or an ISO 8601 time such as 2026-03-01T08:00:00Z
    """
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now
    try:
        return now - timedelta(seconds=parse_duration(cleaned))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: give 'now', a duration ago such as 2h, 30m, 1d, "
            "or an ISO 8601 time such as 2026-03-01T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@retrain_app.command("request")
def request(
    model: Annotated[str, typer.Argument(help="Registered model name.", show_default=False)],
    since: Annotated[
        str,
        typer.Option(help="Start of the training window: a duration ago (2h, 1d) or ISO time."),
    ] = "24h",
    until: Annotated[
        str, typer.Option(help="End of the training window: 'now', a duration ago or ISO time.")
    ] = "now",
    reason: Annotated[
        str, typer.Option(help="Why, for the model's lineage and the people reading it.")
    ] = "manual request",
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
) -> None:
    """Publish a retrain request for MODEL on the traffic between --since and --until."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    now = datetime.now(UTC)
    try:
        start, end = parse_time(since, now=now), parse_time(until, now=now)
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if end <= start:
        err.print(
            f"[red]error:[/] the window is empty: --since {since} ({start:%Y-%m-%dT%H:%M:%SZ}) "
            f"is not before --until {until} ({end:%Y-%m-%dT%H:%M:%SZ})"
        )
        raise typer.Exit(2)
    settings = settings_with(bootstrap_servers, prefix)
    try:
        data = RetrainRequestData(
            request_id=f"manual.{uuid.uuid4().hex[:16]}",
            model=model,
            reason=reason,
            window=DataWindow(start=start, end=end),
            requested_by="manual",
        )
    except ValidationError as exc:
        problems = "; ".join(str(problem) for problem in validation_errors(exc))
        err.print(f"[red]error:[/] invalid request: {problems}")
        raise typer.Exit(2) from None
    try:
        with Publisher(settings, source="urn:driftloop:cli") as publisher:
            event = publisher.publish("retrain-request", data.model_dump(), time=now)
    except (ProducersError, StreamsError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    err.print(
        f"sent retrain request [bold]{data.request_id}[/] for {model} on "
        f"{start:%Y-%m-%dT%H:%M:%SZ} .. {end:%Y-%m-%dT%H:%M:%SZ} "
        f"to {settings.topic('retrain-requests')}"
    )
    typer.echo(json.dumps(event.model_dump(mode="json", exclude_none=True)))
