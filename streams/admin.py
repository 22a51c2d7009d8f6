"""Creating and inspecting the driftloop topics on a broker."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, KafkaTimeoutError

from streams.exceptions import StreamsError
from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec, get_topic

__all__ = [
    "BrokerUnavailableError",
    "InternalTopic",
    "TopicState",
    "TopicsReport",
    "connect_admin",
    "create_internal_topics",
    "create_topics",
    "delete_prefixed_topics",
]

_TOPIC_ALREADY_EXISTS = 36


class BrokerUnavailableError(StreamsError):
    """The Kafka broker could not be reached."""


@dataclass(frozen=True)
class TopicState:
    """A registry topic as found on the broker after ``create_topics``."""

    spec: TopicSpec
    name: str
    partitions: int
    created: bool


@dataclass
class TopicsReport:
    """What ``create_topics`` did: one state per topic, and warnings for a person."""

    topics: list[TopicState] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def created(self) -> list[str]:
        """Names of the topics this call created."""
        return [t.name for t in self.topics if t.created]


def connect_admin(settings: Settings) -> KafkaAdminClient:
    """An admin client for the configured broker, or a clear error saying how to start one."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="driftloop-admin",
            request_timeout_ms=max(settings.connect_timeout_ms, 5000),
            bootstrap_timeout_ms=settings.connect_timeout_ms,
        )
    except KafkaTimeoutError as exc:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} ({exc.__class__.__name__}). "
            "Start the local broker with `make up`, or point DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS "
            "at a running one."
        ) from None


def _create(client: KafkaAdminClient, request: dict[str, dict]) -> set[str]:
    """Create the requested topics; the names created (existing ones are not an error)."""
    response = client.create_topics(request, raise_errors=False, wait_for_metadata=True)
    created: set[str] = set()
    for result in response["topics"]:
        code = result["error_code"]
        if code == 0:
            created.add(result["name"])
        elif code != _TOPIC_ALREADY_EXISTS:
            raise StreamsError(
                f"could not create topic {result['name']}: "
                f"{result.get('error_message') or f'Kafka error code {code}'}"
            )
    return created


def create_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    admin: KafkaAdminClient | None = None,
) -> TopicsReport:
    """Create the registry's topics that are missing; existing ones are left as they are.

    Idempotent. ``partitions`` overrides the registry default for new topics.
    The report warns when an existing topic has a different partition count,
    and when ``predictions`` and ``feedback`` are not co-partitioned.
    """
    specs = [get_topic(n) for n in names] if names is not None else list(TOPICS.values())
    own_admin = admin is None
    client = admin or connect_admin(settings)
    try:
        request = {
            spec.full_name(settings.topic_prefix): {
                "num_partitions": partitions or spec.partitions,
                "replication_factor": settings.replication_factor,
                "configs": {"retention.ms": str(spec.retention_ms)},
            }
            for spec in specs
        }
        created = _create(client, request)
        described = client.describe_topics(list(request))
        counts = {d["name"]: len(d["partitions"]) for d in described}
    except KafkaError as exc:
        raise StreamsError(f"topic administration failed: {exc}") from None
    finally:
        if own_admin:
            client.close()

    report = TopicsReport()
    for spec in specs:
        name = spec.full_name(settings.topic_prefix)
        report.topics.append(TopicState(spec, name, counts.get(name, 0), name in created))
        wanted = partitions or spec.partitions
        if name not in created and counts.get(name) != wanted:
            report.warnings.append(
                f"{name} already exists with {counts.get(name)} partitions (registry: {wanted}); "
                "left unchanged"
            )
    by_spec = {t.spec.name: t.partitions for t in report.topics}
    if (
        "predictions" in by_spec
        and "feedback" in by_spec
        and (by_spec["predictions"] != by_spec["feedback"])
    ):
        report.warnings.append(
            f"predictions has {by_spec['predictions']} partitions and feedback "
            f"{by_spec['feedback']}: the feedback join needs them equal (co-partitioned)"
        )
    return report


@dataclass(frozen=True)
class InternalTopic:
    """A topic a worker needs besides the registry's: an internal source or a changelog."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def create_internal_topics(
    settings: Settings,
    topics: Iterable[InternalTopic],
    *,
    timeout_s: float = 30.0,
    admin: KafkaAdminClient | None = None,
) -> list[str]:
    """Create the missing ``topics`` and wait until the broker's metadata lists every one.

    Returns the names it created. Existing topics are left as they are. This
    runs before a faust worker starts: faust creates its internal topics while
    it joins the group, and a topic created a few milliseconds before the
    assignment can be missing from it ("Ignoring missing topic"), in which case
    the agent reading it never gets a partition.
    """
    import time

    wanted = {t.name: t for t in topics}
    if not wanted:
        return []
    own_admin = admin is None
    client = admin or connect_admin(settings)
    try:
        request = {
            t.name: {
                "num_partitions": t.partitions,
                "replication_factor": settings.replication_factor,
                "configs": dict(t.configs),
            }
            for t in wanted.values()
        }
        created = sorted(_create(client, request))
        deadline = time.monotonic() + timeout_s
        while True:
            counts = {
                d["name"]: len(d["partitions"])
                for d in client.describe_topics(list(wanted))
                if not d.get("error_code")
            }
            missing = [n for n, t in wanted.items() if counts.get(n, 0) < t.partitions]
            if not missing:
                return created
            if time.monotonic() > deadline:
                raise StreamsError(
                    f"topics {', '.join(missing)} are not in the broker's metadata "
                    f"{timeout_s:g} s after they were created"
                )
            time.sleep(0.2)
    except KafkaError as exc:
        raise StreamsError(f"topic administration failed: {exc}") from None
    finally:
        if own_admin:
            client.close()


def delete_prefixed_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with the settings' prefix, and wait until gone.

    Includes the workers' internal topics (changelogs, partials) of that
    prefix. Refuses the empty prefix, which would mean every topic.
    """
    import time

    prefix = settings.topic_prefix
    if not prefix:
        raise StreamsError("refusing to delete topics for an empty prefix (that is all of them)")
    admin = connect_admin(settings)
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(prefix))
        if doomed:
            admin.delete_topics(doomed, raise_errors=False)
        deadline = time.monotonic() + timeout_s
        while doomed and time.monotonic() < deadline:
            if not {t for t in admin.list_topics() if t.startswith(prefix)}:
                break
            time.sleep(0.2)
        else:
            if doomed:
                raise StreamsError(f"topics of {prefix!r} were not deleted within {timeout_s:g} s")
    except KafkaError as exc:
        raise StreamsError(f"deleting the topics of {prefix!r} failed: {exc}") from None
    finally:
        admin.close()
    return doomed
