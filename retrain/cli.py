"""``driftloop retrainer``: the long-running retrain worker.

It consumes ``retrain-requests`` (consumer group ``<topic_prefix>retrainer``),
reads each request's window of labelled outcomes from Kafka, trains a
candidate, evaluates it against the champion and publishes it as challenger
when it passes the bar; every decision is a model event. One line per stage
says how long it took. Ctrl-C (or SIGTERM) stops it after the request in hand;
``--once`` serves what is waiting and exits; ``--until-idle S`` exits after S
seconds without a request.

Test hook
---------
``DRIFTLOOP_RETRAINER_CRASH_AT=<step>`` makes the worker kill itself with
SIGKILL when a publication reaches ``<step>``, one of
:data:`retrain.worker.RETRAINER_STEPS` (the registry's publish steps, e.g.
``after_blob`` or ``before_pointer``, then ``before_event`` and
``after_event``), as a power cut would. It is read here and nowhere else, and
is meant for crash tests only.

Run it without the front door with ``python -m retrain.cli --help``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import redis
import typer

from online_models.models import ComparisonBar, ModelError
from online_models.registry import ModelRegistry, RegistryError
from online_models.registry.testing import kill_at
from producers.exceptions import ProducersError
from producers.publisher import Publisher
from retrain.models_cli import registry_secret
from retrain.training_data import OutcomeReader, RetrainError
from retrain.worker import (
    RETRAINER_STEPS,
    HandledRequests,
    RetrainConfig,
    RetrainJob,
    RetrainWorker,
)
from streams.cli import BootstrapOption, PrefixOption, settings_with
from streams.events import ModelEventEvent
from streams.exceptions import StreamsError

__all__ = ["CRASH_ENV", "parse_pipelines", "retrainer"]

#: The environment variable of the crash-injection test hook (see the module docstring).
CRASH_ENV = "DRIFTLOOP_RETRAINER_CRASH_AT"


def parse_pipelines(pairs: list[str]) -> dict[str, str]:
    """``MODEL=PIPELINE`` options as a mapping.

    Examples
    --------
    >>> parse_pipelines(["voice-intent=voice_intent", "churn=tabular"])
    {'voice-intent': 'voice_intent', 'churn': 'tabular'}
    >>> parse_pipelines(["voice_intent"])
    Traceback (most recent call last):
    ...
    ValueError: --pipeline takes MODEL=PIPELINE (e.g. voice-intent=voice_intent), got 'voice_intent'
    """
    found: dict[str, str] = {}
    for pair in pairs:
        model, sep, pipeline = pair.partition("=")
        if not sep or not model.strip() or not pipeline.strip():
            raise ValueError(
                f"--pipeline takes MODEL=PIPELINE (e.g. voice-intent=voice_intent), got {pair!r}"
            )
        found[model.strip()] = pipeline.strip()
    return found


def _crash_hook() -> Callable[[str], None]:
    step = os.environ.get(CRASH_ENV) or None
    if step is not None and step not in RETRAINER_STEPS:
        raise ValueError(f"{CRASH_ENV}={step!r} is not a step; steps: {', '.join(RETRAINER_STEPS)}")
    return kill_at(step)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C / SIGTERM; a second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        typer.echo("stopping after the request in hand (Ctrl-C again to interrupt)", err=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _echo(line: str) -> None:
    typer.echo(line)


def retrainer(
    bootstrap_servers: BootstrapOption = None,
    prefix: PrefixOption = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL of the registry (default: DRIFTLOOP_REDIS_URL, else the local Redis).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Serve the requests waiting now, then exit.")
    ] = False,
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            min=0.0,
            help="Exit after this many seconds without a request (for tests and batch runs).",
            show_default=False,
        ),
    ] = None,
    min_examples: Annotated[
        int,
        typer.Option(min=2, help="Labelled outcomes a window needs; fewer abandons the request."),
    ] = 1000,
    holdout_fraction: Annotated[
        float,
        typer.Option(
            min=0.01, max=0.99, help="Most recent share of the window kept for evaluation."
        ),
    ] = 0.2,
    min_improvement: Annotated[
        float,
        typer.Option(help="Overall accuracy gain over the champion needed (0.01 = 1 point)."),
    ] = 0.0,
    max_segment_regression: Annotated[
        float,
        typer.Option(min=0.0, help="Largest accuracy loss allowed in any judged segment."),
    ] = 0.02,
    min_eval_examples: Annotated[
        int,
        typer.Option(
            min=1,
            help="Holdout rows the evaluation needs; segments with fewer are reported, not judged.",
        ),
    ] = 200,
    pipeline: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline",
            help="MODEL=PIPELINE for a model whose versions carry no pipeline tag (repeatable).",
            show_default=False,
        ),
    ] = None,
    default_pipeline: Annotated[
        str, typer.Option(help="Pipeline of a model with no version and no --pipeline.")
    ] = "tabular",
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start/--from-scratch",
            help="Train the candidate from a copy of the champion (it keeps what it knew and "
            "learns the window on top: better on short windows and gradual drift) or from "
            "scratch on the window alone.",
        ),
    ] = False,
) -> None:
    """Run the retrain worker: requests in, challengers (or reasons why not) out."""
    settings = settings_with(bootstrap_servers, prefix)
    if redis_url:
        settings = settings.model_copy(update={"redis_url": redis_url})
    secret = registry_secret(settings)
    if secret is None:
        typer.echo(
            "error: the retrainer signs the models it publishes: set DRIFTLOOP_REGISTRY_SECRET "
            "(at least 16 bytes, the secret the router checks artifacts with)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        config = RetrainConfig(
            min_examples=min_examples,
            holdout_fraction=holdout_fraction,
            bar=ComparisonBar(
                min_improvement=min_improvement,
                min_examples=min_eval_examples,
                max_segment_regression=max_segment_regression,
            ),
            pipelines=parse_pipelines(pipeline or []),
            default_pipeline=default_pipeline,
            warm_start=warm_start,
        )
        on_step = _crash_hook()
    except (ValueError, ModelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    namespace = settings.registry_namespace
    reader = OutcomeReader(settings)
    try:
        with (
            Publisher(settings, source="urn:driftloop:retrainer") as publisher,
            _stop_on_signals() as stop,
        ):

            def emit(event: ModelEventEvent) -> None:
                publisher.send(event)
                publisher.flush()

            job = RetrainJob(
                ModelRegistry(client, secret, namespace, on_step=on_step),
                fetch=lambda request: reader.read(request.model, request.window),
                emit=emit,
                handled=HandledRequests(client, namespace),
                config=config,
                on_step=on_step,
                echo=_echo,
            )
            worker = RetrainWorker(settings, job, echo=_echo)
            typer.echo(
                f"retrainer: group {worker.group_id} on {worker.topic} at "
                f"{settings.kafka_bootstrap_servers}, registry {namespace!r} at "
                f"{settings.redis_url}"
            )
            results = worker.run(once=once, until_idle_s=until_idle, stop=stop)
    except (RetrainError, RegistryError, StreamsError, ProducersError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        typer.echo(
            f"error: cannot reach Redis ({exc}); start it with `driftloop infra up` or set "
            "DRIFTLOOP_REDIS_URL",
            err=True,
        )
        raise typer.Exit(1) from None
    finally:
        client.close()
    summary = ", ".join(f"{r.request_id}: {r.action}" for r in results) or "no requests"
    typer.echo(f"retrainer stopped ({summary})")


if __name__ == "__main__":
    typer.run(retrainer)
