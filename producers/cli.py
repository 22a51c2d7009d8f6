"""``driftloop publish``: put predictions or feedback from a file onto their topics."""

from __future__ import annotations

import io
import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from producers.exceptions import ProducersError
from producers.publisher import Publisher
from producers.sources import SourceLine, detect_format, open_input, read_events, text_reader
from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.exceptions import StreamsError

__all__ = ["EXIT_DELIVERY", "EXIT_REJECTED", "publish_app"]

EXIT_REJECTED = 1
EXIT_DELIVERY = 3
SHOWN_REJECTS = 20

console = Console(stderr=True)
publish_app = typer.Typer(
    help="Publish prediction or feedback events from a JSON Lines or CSV file (or stdin).",
    no_args_is_help=True,
)


class InputFormat(StrEnum):
    """Input file formats."""

    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"


FileArgument = Annotated[
    str,
    typer.Argument(
        help="JSON Lines or CSV file, or '-' for JSON Lines on stdin.",
        metavar="FILE",
        show_default=False,
    ),
]
FormatOption = Annotated[
    InputFormat, typer.Option("--format", "-f", help="Input format; auto = from the file name.")
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Exit 0 even when some lines were rejected (they are still reported, never sent).",
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Validate every line, send nothing.")]
ErrorsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--errors-file",
        help="Write every rejected line as JSON Lines: {line, error}.",
        show_default=False,
    ),
]

_EPILOG = """
A line is either a whole CloudEvent or just its data; with data only, optional
"id" and "time" keys next to the fields fill the envelope. In CSV, dotted
column names nest: features.loudness_db, prediction.label, segment.locale.

Exit status: 0 all sent; 1 some lines rejected (unless --skip-invalid);
2 bad usage; 3 the broker did not take them.
"""


class _CountingReader(io.RawIOBase):
    """A binary file that remembers how many bytes were read from it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _publish(
    kind: str,
    file: str,
    fmt: InputFormat,
    skip_invalid: bool,
    dry_run: bool,
    errors_file: Path | None,
    bootstrap_servers: str | None,
    prefix: str | None,
) -> None:
    settings = settings_with(bootstrap_servers, prefix)
    chosen = detect_format(file) if fmt is InputFormat.auto else fmt.value
    if file != "-" and not Path(file).is_file():
        console.print(f"[red]error:[/] no such file: {file}")
        raise typer.Exit(2)

    counter: _CountingReader | None = None
    if file == "-":
        stream = open_input("-")
        total = None
    else:
        counter = _CountingReader(Path(file).open("rb"))  # noqa: SIM115 - closed with stream
        stream = text_reader(io.BufferedReader(counter), gzipped=file.endswith(".gz"))
        total = os.path.getsize(file)

    rejected: list[SourceLine] = []
    accepted = 0
    started = time.perf_counter()
    publisher: Publisher | None = None
    errors_out = errors_file.open("w") if errors_file else None
    try:
        if not dry_run:
            publisher = Publisher(settings, source=f"urn:driftloop:cli:publish:{kind}")
        columns = [
            TextColumn(f"[bold]{'validating' if dry_run else 'publishing'} {kind}"),
            BarColumn(),
            DownloadColumn() if total else MofNCompleteColumn(),
            TextColumn("{task.fields[events]} events, {task.fields[rejected]} rejected"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("publish", total=total, events=0, rejected=0)
            for item in read_events(kind, stream, chosen):
                if item.event is None:
                    rejected.append(item)
                    if errors_out:
                        errors_out.write(
                            json.dumps({"line": item.line, "error": item.error}) + "\n"
                        )
                else:
                    if publisher is not None:
                        publisher.send(item.event)
                    accepted += 1
                if (accepted + len(rejected)) % 500 == 0:
                    progress.update(
                        task,
                        completed=counter.position if counter else accepted + len(rejected),
                        events=accepted,
                        rejected=len(rejected),
                    )
            if publisher is not None:
                publisher.flush()
            progress.update(
                task,
                completed=total if total else accepted + len(rejected),
                events=accepted,
                rejected=len(rejected),
            )
    except (ProducersError, StreamsError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_DELIVERY) from None
    finally:
        stream.close()
        if errors_out:
            errors_out.close()
        if publisher is not None:
            try:
                publisher.close()
            except (ProducersError, StreamsError) as exc:
                console.print(f"[red]error:[/] {exc}")

    elapsed = time.perf_counter() - started
    for item in rejected[:SHOWN_REJECTS]:
        console.print(f"[red]rejected[/] line {item.line}: {item.error}", highlight=False)
    if len(rejected) > SHOWN_REJECTS:
        more = len(rejected) - SHOWN_REJECTS
        hint = f" (all are in {errors_file})" if errors_file else " (use --errors-file to get all)"
        console.print(f"... and {more} more rejected lines{hint}")

    summary = Table(show_header=False, box=None)
    summary.add_row("topic", settings.topic("predictions" if kind == "prediction" else "feedback"))
    summary.add_row("validated" if dry_run else "sent", f"{accepted} events")
    summary.add_row("rejected", f"{len(rejected)} lines")
    rate = accepted / elapsed if elapsed > 0 else 0.0
    summary.add_row("time", f"{elapsed:.2f} s ({rate:,.0f} events/s)")
    console.print(summary)
    if rejected and not skip_invalid:
        raise typer.Exit(EXIT_REJECTED)


@publish_app.command("predictions", epilog=_EPILOG)
def publish_predictions(
    file: FileArgument,
    fmt: FormatOption = InputFormat.auto,
    skip_invalid: SkipInvalidOption = False,
    dry_run: DryRunOption = False,
    errors_file: ErrorsFileOption = None,
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
) -> None:
    """Publish driftloop.prediction.v1 events to the predictions topic.

    Each line needs request_id, model, model_version, features, prediction
    ({label, score}) and latency_ms; segment, route and host are optional.
    Every line is validated first: an invalid line is reported with its line
    number and field, and never sent.
    """
    _publish("prediction", file, fmt, skip_invalid, dry_run, errors_file, bootstrap_servers, prefix)


@publish_app.command("feedback", epilog=_EPILOG)
def publish_feedback(
    file: FileArgument,
    fmt: FormatOption = InputFormat.auto,
    skip_invalid: SkipInvalidOption = False,
    dry_run: DryRunOption = False,
    errors_file: ErrorsFileOption = None,
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
) -> None:
    """Publish driftloop.feedback.v1 events to the feedback topic.

    Each line needs request_id, model and at least one of label,
    redo_search, switched_to_typing, clicked. Every line is validated first:
    an invalid line is reported with its line number and field, and never sent.
    """
    _publish("feedback", file, fmt, skip_invalid, dry_run, errors_file, bootstrap_servers, prefix)
