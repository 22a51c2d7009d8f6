"""``driftloop reference``: register the data drift is measured against.

By default a model version's reference is its first events (or, for a version
the retrain worker trained, its training data). ``reference set`` replaces it
with a file of your own: rows of the model's features (CSV, JSON Lines or
Parquet). The worker picks it up within ``reference_refresh_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from online_models.drift import ReferenceProfile, ReferenceProfileError
from online_models.registry import ModelRegistry, RegistryError
from streams.references import ReferenceStore
from streams.settings import Settings

__all__ = ["reference_app"]

reference_app = typer.Typer(
    help="Set or show the reference data drift is measured against, per model version.",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True)
_out = Console()


def _store(redis_url: str | None, namespace: str | None) -> tuple[ReferenceStore, ModelRegistry]:
    settings = Settings()
    client = redis.Redis.from_url(redis_url or settings.redis_url)
    ns = namespace or settings.registry_namespace
    return ReferenceStore(client, ns), ModelRegistry(client, None, namespace=ns)


def _version(registry: ModelRegistry, model: str, version: str | None) -> str:
    if version:
        return version
    champion = registry.get_alias(model, "champion")
    if champion is None:
        raise typer.BadParameter(f"model {model!r} has no champion in the registry: give --version")
    return str(champion)


@reference_app.command("set")
def set_reference(
    model: Annotated[str, typer.Argument(help="Model name.")],
    file: Annotated[Path, typer.Argument(help="Rows of features: .csv, .jsonl or .parquet.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the champion).")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option("--ignore", help="A column that is not a feature.")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Default: settings.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Default: settings.")] = None,
) -> None:
    """Make FILE the reference of MODEL's version (the champion by default)."""
    try:
        store, registry = _store(redis_url, namespace)
        chosen = _version(registry, model, version)
        profile = ReferenceProfile.from_file(
            file, model=model, model_version=chosen, ignore=tuple(ignore or ())
        )
        key = store.put(profile)
    except (ReferenceProfileError, RegistryError) as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        _err.print(f"[red]error:[/red] cannot reach Redis: {exc} (is it running? make up)")
        raise typer.Exit(1) from None
    signals = len(profile.numeric) + len(profile.categorical)
    _out.print(
        f"reference of {model} version {chosen}: {profile.rows:,} rows, {signals} signals "
        f"({len(profile.numeric)} numeric, {len(profile.categorical)} categorical) -> {key}"
    )


@reference_app.command("show")
def show_reference(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the champion).")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Default: settings.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Default: settings.")] = None,
) -> None:
    """Show the stored reference of MODEL's version, signal by signal."""
    try:
        store, registry = _store(redis_url, namespace)
        chosen = _version(registry, model, version)
        profile = store.get(model, chosen)
    except (ReferenceProfileError, RegistryError) as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    if profile is None:
        _err.print(
            f"no stored reference for {model} version {chosen}: the worker uses the "
            "version's first events ('driftloop reference set' registers a file)"
        )
        raise typer.Exit(1)
    table = Table(title=f"{model} v{chosen}: {profile.source}, {profile.rows:,} rows")
    for column in ("signal", "kind", "values", "summary"):
        table.add_column(column)
    for name, numeric in sorted(profile.numeric.items()):
        sample = numeric.sample
        table.add_row(
            name, "numeric", f"{numeric.count:,}",
            f"median {float(sample[sample.size // 2]):.4g}, "
            f"range {float(sample[0]):.4g} .. {float(sample[-1]):.4g}",
        )  # fmt: skip
    for name, categorical in sorted(profile.categorical.items()):
        pairs = zip(categorical.categories, categorical.shares(), strict=True)
        top = ", ".join(f"{category} {share:.0%}" for category, share in list(pairs)[:4])
        table.add_row(name, "categorical", f"{categorical.count:,}", top)
    _out.print(table)
