"""``driftloop serve``: run the prediction router."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from producers.exceptions import ProducersError
from streams.exceptions import StreamsError
from streams.settings import Settings

__all__ = ["serve"]

err_console = Console(stderr=True)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Serve only this model (repeat for more); default: every model in the registry.",
            show_default=False,
        ),
    ] = None,
    poll_interval_s: Annotated[
        float,
        typer.Option(min=0.1, help="Re-read routing states this often even without a model event."),
    ] = 5.0,
    loglevel: Annotated[str, typer.Option(help="Log level: error, warning, info or debug.")] = (
        "info"
    ),
) -> None:
    """Serve predictions: champion and challenger from the registry, hot-swapped on model events.

    POST /predict {"request_id", "model", "user_id"?, "features": {...} | "audio_wav_base64"}
    answers {"request_id", "model", "model_version", "label", "score", "route"} and publishes
    a prediction event for it (and one with route "shadow" while a challenger is shadowed).
    GET /status shows each model's versions, rollout phase and last model event.
    Needs DRIFTLOOP_REGISTRY_SECRET; Redis and Kafka come from DRIFTLOOP_* settings.
    """
    from aiohttp import web

    from producers.router.service import RouterService, build_app
    from streams.admin import create_topics

    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    try:
        create_topics(settings, ["predictions", "model-events"])
        service = RouterService.from_settings(
            settings, models=model or None, poll_interval_s=poll_interval_s
        )
    except (ProducersError, StreamsError) as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    err_console.print(
        f"driftloop serve on http://{host}:{port}\n"
        f"  models: {', '.join(model) if model else 'every model in the registry'} "
        f"(registry {settings.redis_url}, namespace {settings.registry_namespace!r})\n"
        f"  predictions to {settings.topic('predictions')}, "
        f"hot swap on {settings.topic('model-events')}",
        highlight=False,
    )
    web.run_app(build_app(service), host=host, port=port, access_log=None, print=None)


if __name__ == "__main__":  # `python -m producers.router.cli` until `driftloop serve` is wired
    typer.run(serve)
