"""The ``driftloop`` command: the front door to every part of the loop."""

from __future__ import annotations

from pathlib import Path
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
    story: Annotated[
        str,
        typer.Option(
            help="Which story: 'loop' (the voice-search loop: drift, alert, retrain, rollout) "
            "or 'smoke' (publish, read back, and the worker's window metrics)."
        ),
    ] = "smoke",
    scenario: Annotated[
        str,
        typer.Option(
            help="Loop story: the voice-search drifts, played in turn, each on top of the "
            "last (sudden-mic, sudden-vocab, gradual with its ramp shortened to --ramp-s; "
            "comma-separated). Each act closes its own loop.",
        ),
    ] = "sudden-mic,gradual",
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Loop story: keep the topics and registry keys, and leave a dashboard running.",
        ),
    ] = False,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Loop story: also write the summary as JSON to this file."),
    ] = None,
    timeout_s: Annotated[
        float,
        typer.Option(
            "--timeout-s",
            min=10,
            help="Loop story: seconds from each drift onset its promotion must come within.",
        ),
    ] = 240.0,
    ramp_s: Annotated[
        float, typer.Option(min=1, help="Loop story: length of a gradual scenario's ramp.")
    ] = 60.0,
    requests: Annotated[
        int, typer.Option(min=1, help="Smoke story: how many voice-search requests to simulate.")
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
    """Run the end-to-end demo against the running Kafka and Redis (`make demo` starts them).

    --story loop: a voice_intent champion trained on clean voice searches serves
    through `driftloop serve`; worker, retrainer and rollout run as processes;
    the microphones get quieter (or the vocabulary changes) and the story is
    told live, window by window, alert, retrain, shadow, canary, ramp,
    promotion; the summary is read back from the topics and the registry.
    Exits 1 when the loop does not close within --timeout-s.

    --story smoke: create the topics, publish simulated voice-search predictions
    and feedback, read them back and check every event arrived, valid, once; then
    start a worker, send a minute of traffic, and show its window metrics.
    """
    import uuid

    from producers.exceptions import ProducersError
    from streams.admin import delete_prefixed_topics
    from streams.exceptions import StreamsError
    from streams.settings import Settings

    console = Console()
    if story not in ("loop", "smoke"):
        console.print(f"[red]error:[/] unknown story {story!r}; valid stories: loop, smoke")
        raise typer.Exit(2)
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
        run = uuid.uuid4().hex[:6]
        settings = Settings(topic_prefix=f"{prefix}{run}.")
        if story == "loop":
            from driftloop.voice_demo import run_story_command

            code = run_story_command(
                settings.model_copy(update={"registry_namespace": f"{prefix.rstrip('.')}:{run}:"}),
                scenario=scenario,
                keep=keep,
                json_path=json_path,
                timeout_s=timeout_s,
                ramp_s=ramp_s,
                seed=seed,
                console=console,
            )
            raise typer.Exit(code)
        from driftloop.demo import run_monitor, run_smoke

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
