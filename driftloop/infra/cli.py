"""``driftloop infra``: start, stop and inspect the local Kafka and Redis."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from driftloop.infra import SERVICES, InfraError, down, preflight, status, up
from streams.settings import Settings

__all__ = ["app"]

app = typer.Typer(
    name="infra",
    help="Start, stop and inspect the local Kafka broker and Redis server (no Docker needed).",
    no_args_is_help=True,
    add_completion=False,
)


class Service(StrEnum):
    """A local service."""

    kafka = "kafka"
    redis = "redis"


OnlyOption = Annotated[
    list[Service] | None,
    typer.Option(
        "--only",
        help="Act on this service only; repeat to name several. Default: all.",
        case_sensitive=False,
        show_default=False,
    ),
]


def _chosen(only: list[Service] | None) -> list[str]:
    if not only:
        return list(SERVICES)
    return [name for name in SERVICES if name in {s.value for s in only}]


def _echo(line: str) -> None:
    typer.echo(line)


def _fail(exc: InfraError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@app.command("up")
def up_command(
    only: OnlyOption = None,
    started_file: Annotated[
        Path | None,
        typer.Option(
            "--started-file",
            help="Append the name of each service this call starts, one per line, so that "
            "`down --started-file` can stop exactly those later.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Start Kafka and Redis on 127.0.0.1; those already running are left as they are.

    The first start fetches the Kafka jars from Maven Central (needs `mvn` and
    `java`; `make deps` installs them). Ports, state and cache directories come
    from DRIFTLOOP_* variables (DRIFTLOOP_KAFKA_PORT, DRIFTLOOP_REDIS_PORT,
    DRIFTLOOP_STATE_DIR, ...). Exits 1 if a service cannot start.
    """
    settings = Settings()
    names = _chosen(only)
    try:
        preflight(settings, names)
    except InfraError as exc:
        raise _fail(exc) from exc
    for name in names:
        # One service at a time so that the started file is complete even when a
        # later service fails: the caller can then stop what did start.
        try:
            started = up(settings, (name,), echo=_echo)
        except InfraError as exc:
            raise _fail(exc) from exc
        if started and started_file is not None:
            with started_file.open("a") as fh:
                fh.write(f"{name}\n")


@app.command("down")
def down_command(
    only: OnlyOption = None,
    started_file: Annotated[
        Path | None,
        typer.Option(
            "--started-file",
            help="Stop only the services named in this file (as written by `up "
            "--started-file`); a missing or empty file stops nothing.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Stop the local Kafka and Redis (Kafka shuts down cleanly within ~30 s).

    Data stays in the state directory (DRIFTLOOP_STATE_DIR, default .driftloop/)
    for the next `up`. Stopping what is not running is harmless.
    """
    names = _chosen(only)
    if started_file is not None:
        try:
            listed = {line.strip() for line in started_file.read_text().splitlines()}
        except FileNotFoundError:
            listed = set()
        names = [name for name in names if name in listed]
        if not names:
            _echo("nothing to stop: this run started no service")
            return
    settings = Settings()
    try:
        down(settings, names, echo=_echo)
    except InfraError as exc:
        raise _fail(exc) from exc


@app.command("status")
def status_command(
    only: OnlyOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing; only set the exit code.")
    ] = False,
) -> None:
    """Show whether Kafka and Redis are running, with pid, address, data and log paths.

    Exits 0 when every service asked about is running and accepting
    connections, 1 otherwise.
    """
    settings = Settings()
    names = _chosen(only)
    report = {name: st for name, st in status(settings).items() if name in names}
    if not quiet:
        table = Table(title=f"driftloop services (state in {settings.state_dir})")
        for column in ("service", "state", "pid", "address"):
            table.add_column(column, no_wrap=column != "state")
        for column in ("data dir", "log file"):
            # Paths are worth reading whole: wrap them rather than cut them short.
            table.add_column(column, overflow="fold")
        for st in report.values():
            state = Text("running", style="green") if st.running else Text("stopped", style="red")
            if not st.running and st.detail != "not running":
                state.append(f"\n{st.detail}", style="default")
            table.add_row(
                st.name,
                state,
                str(st.pid) if st.pid is not None else "-",
                st.address,
                str(st.data_dir or "-"),
                str(st.log_file or "-"),
            )
        Console().print(table)
    raise typer.Exit(code=0 if all(st.running for st in report.values()) else 1)
