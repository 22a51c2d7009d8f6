"""Generated documents of the wire contract: JSON Schema files and an AsyncAPI document.

Both come from the classes in :mod:`streams.events` and :mod:`streams.topics`
and are committed under ``docs/``; a test regenerates them and fails when the
committed files differ from the code (``driftloop schemas export`` fixes that).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from streams.dead_letters import HEADER_PREFIX, DeadLetter
from streams.events import EVENT_CLASSES
from streams.topics import TOPICS

__all__ = ["asyncapi_document", "check", "export", "json_schemas", "rendered_files"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEAD_LETTER_SCHEMA = "driftloop.dead-letter.headers"


def json_schemas() -> dict[str, dict[str, Any]]:
    """One self-contained JSON Schema per event type (and one for dead-letter headers).

    Examples
    --------
    >>> schemas = json_schemas()
    >>> schemas["driftloop.prediction.v1"]["properties"]["type"]["const"]
    'driftloop.prediction.v1'
    >>> sorted(schemas["driftloop.prediction.v1"]["properties"]["data"]["required"])
    ['features', 'latency_ms', 'model', 'model_version', 'prediction', 'request_id']
    """
    out: dict[str, dict[str, Any]] = {}
    for type_name, cls in sorted(EVENT_CLASSES.items()):
        schema = cls.model_json_schema()
        defs = schema.pop("$defs", {})
        # inline the data model so each file reads top-down: envelope, then data
        data_ref = schema["properties"]["data"].pop("$ref").rsplit("/", 1)[-1]
        schema["properties"]["data"] = {**defs.pop(data_ref), **schema["properties"]["data"]}
        out[type_name] = {
            "$schema": SCHEMA_DIALECT,
            "$id": f"urn:driftloop:schema:{type_name}",
            **schema,
            **({"$defs": defs} if defs else {}),
        }
    out[DEAD_LETTER_SCHEMA] = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:driftloop:schema:{DEAD_LETTER_SCHEMA}",
        **DeadLetter.model_json_schema(),
        "description": (
            "Headers of a dead letter; each field is sent as the record header "
            f"'{HEADER_PREFIX}<field>' with a UTF-8 value. The record key and value are the "
            "original record's bytes, unchanged."
        ),
    }
    return out


def asyncapi_document(prefix: str = "driftloop.") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, its key and its messages."""
    components: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in TOPICS.values():
        channel_id = spec.name.replace("-", "_")
        if spec.event_class is not None:
            cls = spec.event_class
            schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[cls.__name__] = schema
            message_id = cls.kind.replace("-", "_")
            messages[message_id] = {
                "name": cls.type_name,
                "title": cls.__name__,
                "summary": (cls.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/cloudevents+json",
                "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
            }
        else:
            message_id = "dead_letter"
            components["DeadLetterHeaders"] = DeadLetter.model_json_schema()
            messages[message_id] = {
                "name": "dead-letter",
                "title": "DeadLetter",
                "summary": "A refused record: original key and value bytes, the reason in headers.",
                "contentType": "application/octet-stream",
                "headers": {
                    "type": "object",
                    "description": f"Each field is sent as the header '{HEADER_PREFIX}<field>'.",
                    "properties": {
                        f"{HEADER_PREFIX}{name}": {"type": "string"}
                        for name in DeadLetter.model_fields
                    },
                },
                "payload": {"type": "string", "format": "binary"},
            }
        channels[channel_id] = {
            "address": spec.full_name(prefix),
            "description": (
                f"{spec.description} Key: {spec.key}. Default partitions: {spec.partitions}. "
                "A record holds one event or a JSON array of events "
                "(application/cloudevents-batch+json)."
                if spec.event_class is not None
                else f"{spec.description} Key: {spec.key}."
            ),
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        }
        for action in ("send", "receive"):
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "driftloop wire contract",
            "version": version("driftloop"),
            "description": (
                "Topics and CloudEvents 1.0 (structured JSON mode) messages of driftloop. "
                "Generated by `driftloop schemas export` from streams/events.py and "
                "streams/topics.py: do not edit by hand."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker `make up` starts.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(components.items()))},
    }


def rendered_files() -> dict[str, str]:
    """Path (relative to the docs folder) -> text, for every generated file."""
    files = {
        f"schemas/{name}.json": json.dumps(schema, indent=2, sort_keys=False) + "\n"
        for name, schema in json_schemas().items()
    }
    files["asyncapi.yaml"] = (
        "# Generated by `driftloop schemas export`; do not edit by hand.\n"
        + yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)
    )
    return files


def export(docs_dir: Path) -> list[Path]:
    """Write every generated file under ``docs_dir``; return the paths that changed."""
    changed = []
    for relative, text in rendered_files().items():
        path = docs_dir / relative
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def check(docs_dir: Path) -> list[str]:
    """Generated files that are missing or differ from the code (empty when up to date)."""
    stale = []
    for relative, text in rendered_files().items():
        path = docs_dir / relative
        if not path.exists():
            stale.append(f"{relative} is missing")
        elif path.read_text() != text:
            stale.append(f"{relative} differs from the code")
    expected = set(rendered_files())
    schema_dir = docs_dir / "schemas"
    if schema_dir.is_dir():
        for extra in sorted(schema_dir.glob("*.json")):
            if f"schemas/{extra.name}" not in expected:
                stale.append(f"schemas/{extra.name} is not generated by the code (remove it)")
    return stale
