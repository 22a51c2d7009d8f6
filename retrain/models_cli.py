"""``driftloop models``: look at the model registry, promote, roll back and approve.

The Redis address comes from the settings (``DRIFTLOOP_REDIS_URL``). The
registry secret is only needed to check artifact signatures (``show
--verify``); listing, promoting, rolling back and approving read and move
pointers, never artifacts.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from online_models.registry import (
    ModelRegistry,
    RegistryError,
    Transition,
    VersionInfo,
)
from streams.settings import Settings

__all__ = ["DEFAULT_NAMESPACE", "models_app", "open_registry", "registry_secret"]

DEFAULT_NAMESPACE = "driftloop:"

console = Console()
err_console = Console(stderr=True)

models_app = typer.Typer(
    help="The model registry in Redis: versions, aliases (champion, challenger), promotion, "
    "rollback and approvals.",
    no_args_is_help=True,
)

RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="Redis URL (default: DRIFTLOOP_REDIS_URL, else the local Redis).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[
    str,
    typer.Option("--namespace", help="Prefix of the registry's Redis keys."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def registry_secret(settings: Settings) -> bytes | None:
    """The registry secret: ``Settings.registry_secret`` when the settings have that field.

    Until they do, the CLI (and only the CLI) falls back to the
    ``DRIFTLOOP_REGISTRY_SECRET`` environment variable itself.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> registry_secret(SimpleNamespace(registry_secret="a secret of 24 characters"))
    b'a secret of 24 characters'
    """
    value = getattr(settings, "registry_secret", None)
    if value is None:
        value = os.environ.get("DRIFTLOOP_REGISTRY_SECRET")  # fallback until Settings has it
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, str):
        value = value.encode()
    return value or None


def open_registry(redis_url: str | None, namespace: str) -> ModelRegistry:
    """A registry on the configured Redis (``redis_url`` overrides the settings)."""
    settings = Settings()
    url = redis_url or settings.redis_url
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    return ModelRegistry(client, registry_secret(settings), namespace)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


class _Errors:
    """Turn registry and connection errors into one red line and exit code 1."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, _tb: object) -> bool:
        if isinstance(exc, RegistryError):
            raise _fail(str(exc)) from None
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            raise _fail(
                f"cannot reach Redis ({exc}); start it with `driftloop infra up` or set "
                "DRIFTLOOP_REDIS_URL"
            ) from None
        return False


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


@models_app.command("list")
def models_list(
    redis_url: RedisOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    as_json: JsonOption = False,
) -> None:
    """List registered models: how many versions, the champion and the challenger."""
    with _Errors():
        summaries = open_registry(redis_url, namespace).list_models()
    if as_json:
        console.print_json(json.dumps([s.model_dump() for s in summaries]))
        return
    if not summaries:
        console.print(f"no models registered under {namespace!r} yet")
        return
    table = Table("model", "versions", "latest", "champion", "challenger", "other aliases")
    for summary in summaries:
        others = {a: v for a, v in summary.aliases.items() if a not in ("champion", "challenger")}
        table.add_row(
            summary.name,
            str(summary.versions),
            _opt(summary.latest),
            _opt(summary.champion),
            _opt(summary.challenger),
            ", ".join(f"{a} -> {v}" for a, v in others.items()) or "-",
        )
    console.print(table)


def _version_table(info: VersionInfo) -> Table:
    meta = info.metadata
    table = Table(show_header=False, title=f"{info.model} version {info.version}")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("status", info.status)
    table.add_row("aliases", ", ".join(info.aliases) or "-")
    table.add_row("created", info.created_at.isoformat())
    table.add_row("parent version", _opt(meta.parent_version))
    trigger = meta.trigger
    table.add_row(
        "trigger",
        trigger.requested_by
        + (f" (alerts {', '.join(trigger.alert_ids)})" if trigger.alert_ids else "")
        + (f", request {trigger.retrain_request_id}" if trigger.retrain_request_id else ""),
    )
    window = meta.training_window
    if window is not None:
        if window.start is not None and window.end is not None:
            table.add_row("trained on", f"{window.start.isoformat()} .. {window.end.isoformat()}")
        for span in window.offsets or []:
            table.add_row("offsets", f"{span.topic}[{span.partition}] {span.start}..{span.end}")
    for name, value in meta.metrics.items():
        table.add_row(f"metric {name}", f"{value:g}")
    if meta.reference:
        table.add_row("reference", f"keys: {', '.join(meta.reference)}")
    for key, value in info.tags.items():
        table.add_row(f"tag {key}", value)
    if meta.description:
        table.add_row("description", meta.description)
    table.add_row("artifact", f"{info.artifact_format}, {info.size_bytes} bytes")
    table.add_row("sha256", info.sha256)
    return table


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            "-v",
            help="Version number, alias or 'latest' (default: the champion, else the latest).",
            show_default=False,
        ),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="Also check the artifact's sha256 and signature (needs the secret)."
        ),
    ] = False,
    redis_url: RedisOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    as_json: JsonOption = False,
) -> None:
    """Show one version's metadata: lineage, trigger, training window, metrics, status."""
    with _Errors():
        registry = open_registry(redis_url, namespace)
        ref = version
        if ref is None:
            ref = "champion" if registry.get_alias(model, "champion") is not None else "latest"
        info = registry.verify(model, ref) if verify else registry.get_version(model, ref)
        approvals = registry.approvals(model, info.version)
    if as_json:
        payload = info.model_dump(mode="json")
        payload["approvals"] = [a.model_dump(mode="json") for a in approvals]
        console.print_json(json.dumps(payload))
        return
    console.print(_version_table(info))
    for approval in approvals:
        who = f" by {approval.approved_by}" if approval.approved_by else ""
        console.print(f"approval {approval.step}: {approval.state}{who}", highlight=False)
    if verify:
        console.print("[green]artifact verified[/]: sha256 and signature match")


def _print_transition(transition: Transition, as_json: bool) -> None:
    if as_json:
        console.print_json(transition.model_dump_json())
        return
    champion = _opt(transition.champion)
    if transition.action == "promoted":
        was = f" (was {transition.previous_version})" if transition.previous_version else ""
        console.print(
            f"{transition.model}: version {transition.version} is champion{was}", highlight=False
        )
    else:
        console.print(
            f"{transition.model}: version {transition.version} rolled back; champion is "
            f"{champion}, challenger {_opt(transition.challenger)}",
            highlight=False,
        )


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[
        int | None,
        typer.Argument(help="Version to promote (default: the challenger).", show_default=False),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    redis_url: RedisOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    as_json: JsonOption = False,
) -> None:
    """Make a version (default: the challenger) the champion; the old champion is archived."""
    with _Errors():
        transition = open_registry(redis_url, namespace).promote(model, version, reason=reason)
    _print_transition(transition, as_json)


@models_app.command("rollback")
def models_rollback(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    champion: Annotated[
        bool,
        typer.Option(
            "--champion",
            help="Roll the champion back to the one it replaced, even when there is a challenger.",
        ),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, for the record.")] = None,
    redis_url: RedisOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
    as_json: JsonOption = False,
) -> None:
    """Drop the challenger; or, without one, put the previous champion back."""
    with _Errors():
        transition = open_registry(redis_url, namespace).rollback(
            model, target="champion" if champion else "auto", reason=reason
        )
    _print_transition(transition, as_json)


@models_app.command("approve")
def models_approve(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version whose rollout step you approve.")],
    step: Annotated[
        str, typer.Option(help="Rollout step, e.g. promote, canary-5, ramp-50.")
    ] = "promote",
    approved_by: Annotated[
        str | None,
        typer.Option("--by", help="Who approves (default: your user name).", show_default=False),
    ] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the approval.")] = None,
    redis_url: RedisOption = None,
    namespace: NamespaceOption = DEFAULT_NAMESPACE,
) -> None:
    """Approve one rollout step of a version; the rollout controller waits for it."""
    with _Errors():
        approval = open_registry(redis_url, namespace).approve(
            model, version, step, approved_by=approved_by or getpass.getuser(), note=note
        )
    console.print(
        f"{model}: step {approval.step!r} of version {approval.version} approved by "
        f"{approval.approved_by}",
        highlight=False,
    )
