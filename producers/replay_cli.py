"""``driftloop replay FILE``: historical traffic from a file onto the topics, in event-time order.

The reading, mapping, ordering and pacing live in :mod:`producers.replay`;
this is the command-line shell around it: options, the progress bar, Ctrl-C,
the summary and the exit status (the same as ``driftloop publish``).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.exceptions import ProducersError
from producers.publisher import Publisher
from producers.replay import (
    ColumnMapping,
    Pacer,
    Replay,
    ReplayError,
    ReplayItem,
    ReplayStats,
    parse_speed,
)
from streams.cli import BootstrapOption, settings_with
from streams.exceptions import StreamsError

__all__ = ["EXIT_DELIVERY", "EXIT_INTERRUPTED", "EXIT_REJECTED", "replay", "replay_app"]

EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_DELIVERY = 3
EXIT_INTERRUPTED = 130
SHOWN_REJECTS = 20

console = Console(stderr=True)


class ReplayInputFormat(StrEnum):
    """Input file formats."""

    auto = "auto"
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


# Column-mapping options, shared with `driftloop backtest` (which maps columns the same way).
TimeColOption = Annotated[
    str | None,
    typer.Option(help="Column of the prediction time (default: 'time').", show_default=False),
]
RequestIdColOption = Annotated[
    str | None,
    typer.Option(help="Column of the request id (default: 'request_id').", show_default=False),
]
ModelOption = Annotated[
    str | None,
    typer.Option(help="Model name of every row (else the 'model' column).", show_default=False),
]
ModelVersionOption = Annotated[
    str | None,
    typer.Option(
        help="Model version of every row (else the 'model_version' column).",
        show_default=False,
    ),
]
FeedbackTimeColOption = Annotated[
    str | None,
    typer.Option(
        help="Column of the feedback time (default: 'feedback_time' if present).",
        show_default=False,
    ),
]


def column_mapping(
    mapping_file: Path | None,
    *,
    time_col: str | None,
    request_id_col: str | None,
    feedback_time_col: str | None,
) -> ColumnMapping:
    """The mapping of a mapping file (or the defaults) with the column options on top."""
    mapping = ColumnMapping.from_file(mapping_file) if mapping_file else ColumnMapping()
    return mapping.with_overrides(
        time=time_col, request_id=request_id_col, feedback_time=feedback_time_col
    )


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-01-01T12:00:00Z)", param_hint=option
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _short(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def replay(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, JSON Lines or Parquet file (.gz for CSV and JSON Lines).",
            show_default=False,
        ),
    ],
    mapping_file: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            "-m",
            help="YAML or JSON file mapping event fields to columns (see below).",
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
            min=0,
            help="Seconds from prediction to feedback, for rows without a feedback time.",
        ),
    ] = 0.0,
    speed: Annotated[
        str,
        typer.Option(
            help="Event time per wall time: 60 replays a minute of traffic per second; "
            "'max' sends as fast as the broker takes it.",
        ),
    ] = "max",
    rate: Annotated[
        float | None,
        typer.Option(min=0.001, help="At most this many events per second.", show_default=False),
    ] = None,
    time_from: Annotated[
        str | None,
        typer.Option(
            "--from", help="Only rows at or after this time (ISO 8601).", show_default=False
        ),
    ] = None,
    time_to: Annotated[
        str | None,
        typer.Option("--to", help="Only rows before this time (ISO 8601).", show_default=False),
    ] = None,
    fmt: Annotated[
        ReplayInputFormat,
        typer.Option("--format", "-f", help="Input format; auto = from the file name."),
    ] = ReplayInputFormat.auto,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows read at a time.")] = 20_000,
    reorder_rows: Annotated[
        int,
        typer.Option(
            min=0, help="Rows held to put a slightly unsorted file back in event-time order."
        ),
    ] = 10_000,
    fresh_ids: Annotated[
        bool,
        typer.Option(
            "--fresh-ids",
            help="New event ids, so a second replay of the same file is not deduplicated.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read, map and validate every row; send nothing, no wait."),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Exit 0 even when some rows were rejected (they are still reported, never sent).",
        ),
    ] = False,
    errors_file: Annotated[
        Path | None,
        typer.Option(
            "--errors-file",
            help="Write every rejected row as JSON Lines: {line, error}.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print the summary as one JSON object on stdout.")
    ] = False,
    bootstrap_servers: BootstrapOption = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--topic-prefix",
            "--prefix",
            help="Topic name prefix (default: DRIFTLOOP_TOPIC_PREFIX, else 'driftloop.').",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Replay historical traffic from a file: predictions and feedback, in event-time order.

    Each row is a prediction (time, request id, model version, features,
    predicted label and score, latency, segment). A row with a label or an
    implicit signal (redo_search, switched_to_typing, clicked) also makes a
    feedback event at its feedback time. Columns take the names of the fields
    unless the --mapping file (or --time-col, --request-id-col ...) says
    otherwise; features are the features.* columns, or every column no other
    field uses. A row that cannot be read (bad time, missing request id, a
    value that does not fit) is reported with its line and not sent.

    The file is read in chunks and need not fit in memory. Rows a little out
    of order are put back in order (--reorder-rows); rows further out are sent
    late and counted. Event ids are derived from the file and the line, so a
    second replay of the same file is deduplicated downstream (--fresh-ids to
    avoid that). Ctrl-C stops, flushes what was sent and prints the summary.

    Mapping file (YAML or JSON), every key optional:
    time, request_id, model, model_version, latency_ms, prediction_label,
    prediction_score, label, redo_search, switched_to_typing, clicked,
    feedback_time: a column name each; features, segment: a list of columns
    or a mapping name: column.

    Exit status: 0 all sent; 1 some rows rejected (unless --skip-invalid);
    2 bad usage; 3 the broker did not take them; 130 interrupted.
    """
    try:
        pacing = parse_speed(speed)
        start, end = _parse_time(time_from, "--from"), _parse_time(time_to, "--to")
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
            start=start,
            end=end,
            chunk_rows=chunk_rows,
            reorder_rows=reorder_rows,
            fresh_ids=fresh_ids,
        )
    except ReplayError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None

    settings = settings_with(bootstrap_servers, prefix)
    stop = threading.Event()
    # a dry run checks the file, so it does not wait for event time
    paced = not dry_run and (pacing is not None or rate is not None)
    pacer = Pacer(pacing, rate, sleep=stop.wait) if paced else None
    rejected_shown: list[ReplayItem] = []
    errors_out = errors_file.open("w") if errors_file else None

    def on_reject(item: ReplayItem) -> None:
        if len(rejected_shown) < SHOWN_REJECTS:
            rejected_shown.append(item)
        if errors_out is not None:
            errors_out.write(json.dumps({"line": item.line, "error": item.error}) + "\n")

    def on_sigint(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: the user does not want to wait for the flush
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    publisher: Publisher | None = None
    failed: str | None = None
    started = time.perf_counter()
    try:
        if not dry_run:
            publisher = Publisher(settings, source="urn:driftloop:cli:replay")
        columns = [
            SpinnerColumn(),
            TextColumn(f"[bold]{'validating' if dry_run else 'replaying'} {file.name}"),
            TextColumn("{task.fields[sent]:,} events  {task.fields[rate]:,.0f}/s"),
            TextColumn("event time {task.fields[position]}"),
            TextColumn("{task.fields[rejected]:,} rejected"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("replay", sent=0, rate=0.0, position="-", rejected=0)

            def on_progress(stats: ReplayStats) -> None:
                elapsed = time.perf_counter() - started
                progress.update(
                    task,
                    sent=stats.sent,
                    rate=stats.sent / elapsed if elapsed > 0 else 0.0,
                    position=_short(stats.last_time),
                    rejected=stats.rejected,
                )

            send = publisher.send if publisher is not None else (lambda _event: None)
            source.run(send, pacer=pacer, stop=stop, on_reject=on_reject, on_progress=on_progress)
            if publisher is not None:
                publisher.flush()
    except (ProducersError, StreamsError) as exc:
        failed = str(exc)
    finally:
        signal.signal(signal.SIGINT, previous)
        if errors_out:
            errors_out.close()
        if publisher is not None:
            try:
                publisher.close()
            except (ProducersError, StreamsError) as exc:
                failed = failed or str(exc)
    stats = source.stats
    elapsed = time.perf_counter() - started
    _print_summary(stats, rejected_shown, errors_file, elapsed, dry_run, settings.topic_prefix)
    if as_json:
        typer.echo(json.dumps(_summary_dict(stats, elapsed, publisher, failed)))
    if failed is not None:
        console.print(f"[red]error:[/] {failed}", highlight=False)
        raise typer.Exit(EXIT_DELIVERY)
    if stats.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if stats.rejected and not skip_invalid:
        raise typer.Exit(EXIT_REJECTED)


def _print_summary(
    stats: ReplayStats,
    rejected: list[ReplayItem],
    errors_file: Path | None,
    elapsed: float,
    dry_run: bool,
    topic_prefix: str,
) -> None:
    for item in rejected:
        console.print(f"[red]rejected[/] line {item.line}: {item.error}", highlight=False)
    if stats.rejected > len(rejected):
        more = stats.rejected - len(rejected)
        hint = f" (all are in {errors_file})" if errors_file else " (use --errors-file to get all)"
        console.print(f"... and {more} more rejected rows{hint}")
    if stats.out_of_order:
        lines = ", ".join(map(str, stats.late_rows))
        console.print(
            f"[yellow]warning:[/] {stats.out_of_order} rows were further out of event-time order "
            f"than --reorder-rows and were sent late (up to {stats.max_lateness_s:.3f} s), "
            f"lines {lines}{', ...' if stats.out_of_order > len(stats.late_rows) else ''}; "
            "sort the file or raise --reorder-rows",
            highlight=False,
        )
    summary = Table(show_header=False, box=None)
    summary.add_row("topics", f"{topic_prefix}predictions, {topic_prefix}feedback")
    summary.add_row(
        "validated" if dry_run else "sent",
        f"{stats.sent} events ({stats.predictions} predictions, {stats.feedback} feedback)",
    )
    summary.add_row("rows", f"{stats.rows_read} read, {stats.skipped} outside --from/--to")
    summary.add_row("rejected", f"{stats.rejected} rows")
    summary.add_row("event time", f"{_short(stats.first_time)} .. {_short(stats.last_time)}")
    rate = stats.sent / elapsed if elapsed > 0 else 0.0
    summary.add_row("time", f"{elapsed:.2f} s ({rate:,.0f} events/s)")
    if stats.interrupted:
        summary.add_row("stopped", "interrupted (Ctrl-C); everything sent was flushed")
    console.print(summary)


def _summary_dict(
    stats: ReplayStats, elapsed: float, publisher: Publisher | None, failed: str | None
) -> dict[str, Any]:
    return {
        "rows_read": stats.rows_read,
        "sent": stats.sent,
        "acked": publisher.stats.events_acked if publisher is not None else 0,
        "predictions": stats.predictions,
        "feedback": stats.feedback,
        "rejected": stats.rejected,
        "skipped": stats.skipped,
        "out_of_order": stats.out_of_order,
        "interrupted": stats.interrupted,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": round(stats.sent / elapsed) if elapsed > 0 else 0,
        "first_time": stats.first_time.isoformat() if stats.first_time else None,
        "last_time": stats.last_time.isoformat() if stats.last_time else None,
        "error": failed,
    }


replay_app = typer.Typer(add_completion=False)
"""A one-command app around :func:`replay`, for tests and ``python -m producers.replay_cli``."""
replay_app.command()(replay)

if __name__ == "__main__":
    replay_app()
