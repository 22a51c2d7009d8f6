"""``driftloop backtest FILE``: which alerts a file of history would have raised, and when.

The replay, the worker and the scoring live in :mod:`producers.backtest`; this
is the command-line shell: options (the column mapping options of
``driftloop replay``), the progress bars, Ctrl-C, the tables and the JSON.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.backtest import (
    Backtest,
    BacktestError,
    BacktestReport,
    DriftPoint,
    parse_event_time,
)
from producers.exceptions import ProducersError
from producers.replay import Replay, ReplayError, ReplayItem, ReplayStats
from producers.replay_cli import (
    FeedbackTimeColOption,
    ModelOption,
    ModelVersionOption,
    RequestIdColOption,
    TimeColOption,
    column_mapping,
)
from streams.alerting.rules import parse_duration
from streams.cli import BootstrapOption, settings_with
from streams.exceptions import StreamsError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "backtest", "backtest_app"]

EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130
SHOWN_REJECTS = 10

err_console = Console(stderr=True)


class BacktestInputFormat(StrEnum):
    """Input file formats."""

    auto = "auto"
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _precise(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} s"


def _events(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def backtest(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, JSON Lines or Parquet file (.gz for CSV and JSON Lines).",
            show_default=False,
        ),
    ],
    drift_at: Annotated[
        list[str] | None,
        typer.Option(
            "--drift-at",
            help="A true drift point: TIME or TIME:SIGNAL (ISO 8601 or epoch seconds); repeat "
            "for several. Scores the alerts: delay, false alarms and misses per detector.",
            show_default=False,
        ),
    ] = None,
    horizon: Annotated[
        str,
        typer.Option(help="An alert later than this after a drift point does not detect it."),
    ] = "10m",
    alert_policy: Annotated[
        Path | None,
        typer.Option(
            "--alert-policy",
            help="The alert policy YAML to test (default: short grouping timers, so an "
            "alert's time is its detection time).",
            show_default=False,
        ),
    ] = None,
    events_per_false_alarm: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="False-alarm budget of the drift detectors (default: DRIFTLOOP_DRIFT_"
            "EVENTS_PER_FALSE_ALARM, 1e6).",
            show_default=False,
        ),
    ] = None,
    reference_first_n: Annotated[
        int | None,
        typer.Option(
            min=100,
            help="Events of each model version (per partition) taken as its reference "
            "(default: DRIFTLOOP_DRIFT_REFERENCE_FIRST_N, 5000).",
            show_default=False,
        ),
    ] = None,
    window_events: Annotated[
        int | None,
        typer.Option(
            min=50,
            help="Events per window of the reference comparisons (default: "
            "DRIFTLOOP_DRIFT_WINDOW_EVENTS, 1000).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="Write the report as JSON to this file ('-' for stdout; the tables then go "
            "to stderr).",
            show_default=False,
        ),
    ] = None,
    mapping_file: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            "-m",
            help="YAML or JSON file mapping event fields to columns (as driftloop replay).",
            show_default=False,
        ),
    ] = None,
    time_col: TimeColOption = None,
    request_id_col: RequestIdColOption = None,
    model: ModelOption = None,
    model_version: ModelVersionOption = None,
    feedback_time_col: FeedbackTimeColOption = None,
    feedback_delay: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds from prediction to feedback, for rows without a feedback time."
        ),
    ] = 0.0,
    time_from: Annotated[
        str | None,
        typer.Option("--from", help="Only rows at or after this time.", show_default=False),
    ] = None,
    time_to: Annotated[
        str | None,
        typer.Option("--to", help="Only rows before this time.", show_default=False),
    ] = None,
    fmt: Annotated[
        BacktestInputFormat,
        typer.Option("--format", "-f", help="Input format; auto = from the file name."),
    ] = BacktestInputFormat.auto,
    reorder_rows: Annotated[
        int,
        typer.Option(
            min=0, help="Rows held to put a slightly unsorted file back in event-time order."
        ),
    ] = 10_000,
    timeout: Annotated[
        float,
        typer.Option(
            min=1, help="Seconds to wait for the worker to count every prediction after the replay."
        ),
    ] = 300.0,
    settle: Annotated[
        float,
        typer.Option(
            min=0.5,
            help="Seconds the worker's alert counters must stay still before the alerts are read.",
        ),
    ] = 3.0,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Replay a file through a fresh monitor and report which alerts would have fired, and when.

    The file is replayed as fast as the broker takes it onto topics of the
    backtest's own (backtest-<random>.*, deleted at the end, also on failure or
    Ctrl-C), and a fresh `driftloop worker` watches them. Its decisions are in
    event time, so every alert carries the time it would have had live.

    With --drift-at (the true drift points) each alert gets a verdict and each
    detector a score: detection delay (first alert at or after the point that
    names its signal, in seconds of event time and in predictions), misses (no
    alert within --horizon) and false alarms (alerts before the first drift
    point, or on signals no drift point names). Tune --events-per-false-alarm,
    --reference-first-n or an --alert-policy until they suit you.

    Columns are mapped as by `driftloop replay` (--mapping, --time-col ...).

    Exit status: 0 the report was made; 2 bad usage; 3 the backtest failed
    (broker, worker); 130 interrupted.
    """
    try:
        points = [DriftPoint.parse(text) for text in drift_at or []]
        horizon_s = parse_duration(horizon)
        mapping = column_mapping(
            mapping_file,
            time_col=time_col,
            request_id_col=request_id_col,
            feedback_time_col=feedback_time_col,
        )
        source = Replay(
            file,
            mapping,
            fmt=fmt.value,  # type: ignore[arg-type]
            model=model,
            model_version=model_version,
            feedback_delay=timedelta(seconds=feedback_delay),
            start=parse_event_time(time_from) if time_from else None,
            end=parse_event_time(time_to) if time_to else None,
            reorder_rows=reorder_rows,
        )
        run = Backtest(
            source,
            settings_with(bootstrap_servers, None),
            drift_points=points,
            horizon=timedelta(seconds=horizon_s),
            alert_policy_file=alert_policy,
            events_per_false_alarm=events_per_false_alarm,
            reference_first_n=reference_first_n,
            window_events=window_events,
            timeout_s=timeout,
            settle_s=settle,
        )
    except (BacktestError, ReplayError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None

    stop = threading.Event()

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for the clean-up
            raise KeyboardInterrupt
        stop.set()

    rejected: list[ReplayItem] = []

    def on_reject(item: ReplayItem) -> None:
        if len(rejected) < SHOWN_REJECTS:
            rejected.append(item)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err_console,
        ) as progress:
            replaying = progress.add_task(f"replaying {file.name}", total=None, detail="")
            monitoring = progress.add_task("monitor", total=None, detail="", visible=False)

            def on_replay(stats: ReplayStats) -> None:
                progress.update(
                    replaying,
                    detail=f"{stats.sent:,} events sent, event time {_short(stats.last_time)}, "
                    f"{stats.rejected:,} rejected",
                )

            def on_monitor(counted: int, expected: int) -> None:
                progress.update(replaying, total=1, completed=1)
                progress.update(
                    monitoring,
                    visible=True,
                    total=max(expected, 1),
                    completed=min(counted, expected),
                    detail=f"{counted:,} of {expected:,} predictions counted by the worker",
                )

            report = run.run(
                stop=stop, on_replay=on_replay, on_reject=on_reject, on_monitor=on_monitor
            )
    except (ProducersError, StreamsError) as exc:  # BacktestError is a ProducersError
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    finally:
        signal.signal(signal.SIGINT, previous)

    for item in rejected:
        err_console.print(f"[red]rejected[/] line {item.line}: {item.error}", highlight=False)
    if report.rejected > len(rejected):
        err_console.print(f"... and {report.rejected - len(rejected)} more rejected rows")
    out = err_console if json_out == "-" else Console()
    print_report(report, out)
    if json_out is not None:
        text = json.dumps(report.to_dict(), indent=2)
        if json_out == "-":
            typer.echo(text)
        else:
            Path(json_out).write_text(text + "\n")
            out.print(f"report written to {json_out}", highlight=False)
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def print_report(report: BacktestReport, console: Console) -> None:
    """The report as tables: the run, every alert, and the score when drift points were given."""
    summary = Table(show_header=False, box=None)
    summary.add_row("file", report.file)
    summary.add_row(
        "replayed",
        f"{report.predictions:,} predictions, {report.feedback:,} feedback, "
        f"{report.rejected:,} rows rejected",
    )
    summary.add_row("event time", f"{_short(report.first_time)} .. {_short(report.last_time)}")
    summary.add_row("took", f"{report.replay_s:.1f} s replay, {report.monitor_s:.1f} s monitor")
    if report.interrupted:
        summary.add_row("stopped", "interrupted (Ctrl-C): no alerts were collected")
    console.print(summary)

    firing = sum(a.firing for a in report.alerts)
    verdicts = report.score.verdicts if report.score else (None,) * len(report.alerts)
    if report.alerts:
        table = Table(title=f"{firing} firing alerts, {len(report.alerts) - firing} resolved")
        table.add_column("time (event time)", no_wrap=True)
        for column in ("model", "kind", "signal", "detector: statistic vs threshold"):
            table.add_column(column)
        table.add_column("verdict" if report.score else "status")
        for alert, verdict in zip(report.alerts, verdicts, strict=True):
            if verdict is None:
                outcome = alert.status
            else:
                colour = {"false_alarm": "red", "detection": "green"}.get(verdict, "dim")
                outcome = f"[{colour}]{verdict.replace('_', ' ')}[/]"
            table.add_row(
                _precise(alert.at),
                f"{alert.model}:{alert.model_version}",
                f"{alert.kind} {alert.pattern}" if alert.pattern else alert.kind,
                ",".join(alert.signals),
                f"{alert.detector}: {alert.statistic:.4g} vs {alert.threshold:.4g}",
                outcome,
            )
        console.print(table)
    elif not report.interrupted:
        console.print("[green]no alert[/] would have fired on this file")
    for request in report.retrain_requests:
        console.print(
            f"retrain request for {request.model}: {request.reason} "
            f"(window {_short(request.window.start)} .. {_short(request.window.end)})",
            highlight=False,
        )

    score = report.score
    if score is None:
        return
    points = Table(title=f"drift points (horizon {score.horizon_s:g} s)")
    for column in ("drift at", "signal", "detected by", "delay", "delay (predictions)"):
        points.add_column(column)
    for result in score.points:
        found = result.alert
        points.add_row(
            _short(result.point.at),
            result.point.signal or "(any)",
            f"{found.detector} on {','.join(found.signals)}" if found else "[red]missed[/]",
            _seconds(result.delay_s),
            _events(result.delay_events),
        )
    console.print(points)
    detectors = Table(title="per detector")
    for column in ("detector", "detected", "missed", "median delay", "median delay (predictions)"):
        detectors.add_column(column)
    detectors.add_column("false alarms", justify="right")
    for detector in score.detectors:
        detectors.add_row(
            detector.detector,
            str(detector.detected),
            str(detector.missed),
            _seconds(detector.median_delay_s),
            _events(detector.median_delay_events),
            str(detector.false_alarms),
        )
    if score.detectors:
        console.print(detectors)
    console.print(
        f"{len(score.points) - score.misses} of {len(score.points)} drift points detected, "
        f"{score.misses} missed, {len(score.false_alarms)} false alarms",
        highlight=False,
    )


backtest_app = typer.Typer(add_completion=False)
"""A one-command app around :func:`backtest`, for tests and ``python -m producers.backtest_cli``."""
backtest_app.command()(backtest)

if __name__ == "__main__":
    backtest_app()
