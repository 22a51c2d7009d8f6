"""``driftloop topics`` and ``driftloop schemas``: the wire contract from the command line."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from streams import contract
from streams.admin import create_internal_topics, create_topics
from streams.exceptions import StreamsError
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["schemas_app", "topics_app"]

console = Console()
err_console = Console(stderr=True)

topics_app = typer.Typer(
    help="Create and list the driftloop topics (predictions, feedback, outcomes, metrics, "
    "alerts, retrain-requests, model-events, dead-letters).",
    no_args_is_help=True,
)
schemas_app = typer.Typer(
    help="The wire contract as JSON Schema files and an AsyncAPI document.",
    no_args_is_help=True,
)

BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        help="Kafka host:port (default: DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS, else the local broker).",
        show_default=False,
    ),
]
PrefixOption = Annotated[
    str | None,
    typer.Option(
        "--prefix",
        help="Topic name prefix (default: DRIFTLOOP_TOPIC_PREFIX, else 'driftloop.').",
        show_default=False,
    ),
]


def settings_with(bootstrap_servers: str | None, prefix: str | None) -> Settings:
    """Settings from the environment, with command-line overrides applied."""
    overrides: dict[str, str] = {}
    if bootstrap_servers:
        overrides["kafka_bootstrap_servers"] = bootstrap_servers
    if prefix is not None:
        overrides["topic_prefix"] = prefix
    return Settings(**overrides)


@topics_app.command("create")
def topics_create(
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Partitions for every new topic (default: each topic's own, see `topics list`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create every driftloop topic that does not exist yet.

    Safe to run again: existing topics are left as they are (a warning says so
    when their partition count differs from the registry).
    """
    settings = settings_with(bootstrap_servers, prefix)
    try:
        report = create_topics(settings, partitions=partitions)
    except StreamsError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table("topic", "partitions", "key", "status", title=settings.kafka_bootstrap_servers)
    for state in report.topics:
        table.add_row(
            state.name,
            str(state.partitions),
            state.spec.key,
            "[green]created[/]" if state.created else "exists",
        )
    console.print(table)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")


@topics_app.command("list")
def topics_list(prefix: PrefixOption = None) -> None:
    """Show the topic registry: names, keys, default partitions and what flows on each."""
    settings = settings_with(None, prefix)
    table = Table("topic", "key", "partitions", "retention", "carries")
    for spec in TOPICS.values():
        days = spec.retention_ms / 86_400_000
        carries = spec.event_class.type_name if spec.event_class else "original bytes + headers"
        table.add_row(
            spec.full_name(settings.topic_prefix),
            spec.key,
            str(spec.partitions),
            f"{days:g} d",
            carries,
        )
    console.print(table)


@schemas_app.command("export")
def schemas_export(
    docs_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write schemas/*.json and asyncapi.yaml into.")
    ] = Path("docs"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the files differ from the code."),
    ] = False,
) -> None:
    """Generate the JSON Schema files and docs/asyncapi.yaml from the event classes."""
    if check:
        stale = contract.check(docs_dir)
        for line in stale:
            err_console.print(f"[red]stale:[/] {docs_dir / line}")
        if stale:
            err_console.print("run `driftloop schemas export` and commit the result")
            raise typer.Exit(1)
        console.print(f"{docs_dir}: up to date")
        return
    changed = contract.export(docs_dir)
    for path in changed:
        console.print(f"wrote {path}")
    if not changed:
        console.print(f"{docs_dir}: already up to date")


def worker(
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
    web_port: Annotated[
        int | None,
        typer.Option(
            help="Port of /metrics and /healthz on 127.0.0.1 (default: DRIFTLOOP_WEB_PORT, 6066).",
            show_default=False,
        ),
    ] = None,
    loglevel: Annotated[
        str, typer.Option(help="Log level: crit, error, warn, info or debug.")
    ] = "warn",
) -> None:
    """Run a streaming-monitor worker: window metrics from predictions and outcomes.

    Start several with the same settings to share the partitions; when one
    dies the others take its partitions over and recover its windows from the
    changelog. Metrics go to the metrics topic and to /metrics (Prometheus).
    """
    import faust

    from streams.app import create_app
    from streams.exceptions import StreamsError

    settings = settings_with(bootstrap_servers, prefix)
    if web_port is not None:
        settings = settings.model_copy(update={"web_port": web_port})
    monitor = create_app(settings)
    try:
        create_topics(settings)
        create_internal_topics(settings, monitor.internal_topics())
    except StreamsError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    err_console.print(
        f"driftloop worker [bold]{settings.worker_app_id}[/] "
        f"on {settings.kafka_bootstrap_servers}\n"
        f"  consuming {settings.topic('predictions')}, {settings.topic('outcomes')}\n"
        f"  publishing {settings.topic('metrics')} (windows {settings.window_sizes_s} s), "
        f"dead letters to {settings.topic('dead-letters')}\n"
        f"  Prometheus: http://{settings.web_host}:{settings.web_port}/metrics",
        highlight=False,
    )
    # What was built so far (modules, the app) lives as long as the process: out of the
    # collector's full passes. And fewer young passes: a worker allocates in bursts of a
    # record's events, which all live until the record is applied.
    gc.freeze()
    gc.set_threshold(20_000, 20, 10)
    faust.Worker(monitor.app, loglevel=loglevel, quiet=True).execute_from_commandline()
