"""The ``driftloop`` command: the front door to every part of the loop."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from driftloop import __version__
from driftloop.infra.cli import app as infra_app
from producers.backtest_cli import backtest
from producers.cli import publish_app
from producers.replay_cli import replay
from producers.router.cli import serve
from retrain.cli import retrainer
from retrain.models_cli import models_app
from retrain.request_cli import retrain_app
from retrain.rollout_cli import rollout
from streams.alerts_cli import alerts_app
from streams.cli import schemas_app, topics_app, worker
from streams.dashboard.cli import dashboard
from streams.reference_cli import reference_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="driftloop",
    help="driftloop keeps models healthy in production: it watches predictions and user "
    "feedback on Kafka, detects data and concept drift, alerts, retrains, and rolls the new "
    "model out safely.\n\nConfiguration comes from DRIFTLOOP_* environment variables "
    "(e.g. DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS, DRIFTLOOP_REDIS_URL, DRIFTLOOP_TOPIC_PREFIX).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(infra_app, name="infra", help="Start, stop and check the local Kafka and Redis.")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(publish_app, name="publish")
app.command("worker")(worker)
app.command("replay")(replay)
app.command("backtest")(backtest)
app.command("dashboard")(dashboard)
app.command("serve")(serve)
app.add_typer(alerts_app, name="alerts")
app.add_typer(reference_app, name="reference")
app.add_typer(models_app, name="models")
app.add_typer(retrain_app, name="retrain")
app.command("rollout")(rollout)
app.command("retrainer")(retrainer)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"driftloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """driftloop: drift monitoring, retraining and safe rollout on Kafka."""


@app.command()
def demo(
    requests: Annotated[
        int, typer.Option(min=1, help="How many voice-search requests to simulate.")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 0,
    prefix: Annotated[
        str,
        typer.Option(
            help="Topic prefix of the demo; each run uses <prefix><run id>. and deletes "
            "the topics of earlier runs."
        ),
    ] = "driftloop-demo.",
) -> None:
    """Run the end-to-end demo against the running Kafka (`make demo` starts it first).

    Today: create the topics, publish simulated voice-search predictions and
    feedback, read them back and check that every event arrived, valid, once;
    then start a worker, send a minute of traffic, and show the window metrics
    it computes (counts checked against what was sent).
    """
    import uuid

    from driftloop.demo import run_monitor, run_smoke
    from producers.exceptions import ProducersError
    from streams.admin import delete_prefixed_topics
    from streams.exceptions import StreamsError
    from streams.settings import Settings

    console = Console()
    try:
        configured = Settings().topic_prefix
        if configured.startswith(prefix):
            console.print(
                f"[red]error:[/] the demo wipes {prefix}*, which would include your "
                f"{configured}* topics: give it a prefix of its own"
            )
            raise typer.Exit(2)
        wiped = delete_prefixed_topics(Settings(topic_prefix=prefix))
        if wiped:
            console.print(f"removed {len(wiped)} topics of earlier demo runs ({prefix}*)")
        # a new name every run: Kafka deletes topics in the background, and a topic made
        # again under the same name at once can be refused
        settings = Settings(topic_prefix=f"{prefix}{uuid.uuid4().hex[:6]}.")
        smoke = run_smoke(settings, requests=requests, seed=seed, console=console)
        monitor = run_monitor(settings, seed=seed, console=console)
    except (StreamsError, ProducersError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if not (smoke.ok and monitor.ok):
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``driftloop`` console script."""
    app()
