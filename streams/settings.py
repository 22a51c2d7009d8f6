"""The one typed settings object of driftloop.

Every process (worker, publisher, CLI, tests) builds a :class:`Settings` once at
start-up, from ``DRIFTLOOP_*`` environment variables (and a ``.env`` file if one
is present), and passes it in. Nothing else in the code base reads the
environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "driftloop"


class Settings(BaseSettings):
    """driftloop configuration, validated when it is built.

    Each field can be set with an environment variable ``DRIFTLOOP_<FIELD>``;
    the broker and Redis addresses also honour the conventional
    ``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL`` (the ``DRIFTLOOP_`` form wins
    when both are set). When no address is given, they point at the local
    services that ``make up`` starts.

    Examples
    --------
    >>> s = Settings(kafka_port=19092, redis_port=16379, _env_file=None)
    >>> s.kafka_bootstrap_servers, s.redis_url
    ('127.0.0.1:19092', 'redis://127.0.0.1:16379/0')
    >>> s.topic("predictions")
    'driftloop.predictions'
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    # -- where the services are -------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="",
        # DRIFTLOOP_ first: it wins when both are set
        validation_alias=AliasChoices(
            "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Kafka bootstrap servers, host:port[,host:port]. "
        "Default: the local broker on 127.0.0.1:<kafka_port>.",
    )
    redis_url: str = Field(
        default="",
        validation_alias=AliasChoices("DRIFTLOOP_REDIS_URL", "REDIS_URL"),
        description="Redis URL. Default: the local server on 127.0.0.1:<redis_port>, db 0.",
    )
    topic_prefix: str = Field(
        default="driftloop.",
        description="Prefix of every driftloop topic name.",
    )
    replication_factor: int = Field(default=1, ge=1)

    # -- the local services that `make up` starts ---------------------------------
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    redis_port: int = Field(default=6379, ge=1, le=65535)
    kafka_version: str = Field(default="4.1.1", pattern=r"^4\.\d+\.\d+$")
    state_dir: Path = Field(
        default=Path(".driftloop"),
        description="Where the local broker and Redis keep data, logs and pid files.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where the Kafka jars fetched from Maven Central are kept.",
    )
    kafka_heap: str = Field(default="1g", pattern=r"^\d+[mMgG]$")
    start_timeout_s: float = Field(default=90.0, gt=0)

    # -- the publishing SDK -------------------------------------------------------
    publish_batch_events: int = Field(
        default=200,
        ge=1,
        description="Events per Kafka record; 1 sends one event per record keyed by request_id.",
    )
    publish_linger_ms: int = Field(default=50, ge=0)
    publish_max_record_bytes: int = Field(default=900_000, ge=1024)
    delivery_timeout_ms: int = Field(default=30_000, ge=1000)
    connect_timeout_ms: int = Field(default=10_000, ge=100)

    # -- the streaming monitor (`driftloop worker`) ------------------------------------
    worker_app_id: str = Field(
        default="",
        description="faust app id = consumer group of the workers. Default: <topic_prefix>monitor.",
    )
    web_host: str = Field(default="127.0.0.1", description="Where a worker serves /metrics.")
    web_port: int = Field(default=6066, ge=1, le=65535)
    window_sizes_s: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: [10, 60, 300],
        description="Tumbling window sizes, seconds of event time (e.g. '[10,60,300]').",
    )
    rolling_window_s: int = Field(
        default=300,
        gt=0,
        description="Span of the rolling values on /metrics, built from the smallest windows.",
    )
    allowed_lateness_s: float = Field(
        default=30.0, ge=0, description="How long after its end a window still takes events."
    )
    outcome_lateness_s: float = Field(
        default=600.0,
        ge=0,
        description="How long after a window was reported it still takes outcomes (feedback "
        "comes later than predictions); it is reported again when one changes it.",
    )
    rereport_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="A reported window that late outcomes change is reported again at most "
        "this often (wall-clock seconds): one partial for all the outcomes meanwhile.",
    )
    idle_close_s: float = Field(
        default=5.0,
        gt=0,
        description="Publish a partition's open windows after this many wall-clock seconds "
        "without new events (so the end of a stream is reported).",
    )
    max_segments: int = Field(
        default=50,
        ge=1,
        description="Distinct segments tracked per model version; more go to __other__.",
    )
    max_categories: int = Field(default=20, ge=1)
    checkpoint_interval_s: float = Field(
        default=1.0, gt=0, description="How often state is written to the changelog, per partition."
    )
    take_max_records: int = Field(
        default=50,
        ge=1,
        description="Records a worker takes at once; each window gets one update per batch.",
    )
    take_within_s: float = Field(
        default=0.05,
        gt=0,
        description="How long a worker waits to fill a batch before it works on what it has.",
    )
    fetch_min_bytes: int = Field(
        default=65_536,
        ge=1,
        description="Bytes a worker's fetch asks the broker for before it answers (or "
        "fetch_max_wait_ms passes): many records per fetch at low rates.",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        description="Longest a broker holds a worker's fetch to collect fetch_min_bytes.",
    )
    apply_min_events: int = Field(
        default=1000,
        ge=1,
        description="Events a partition collects before its windows and drift detectors are "
        "updated (sooner at each checkpoint): fewer, larger vectorised updates at low rates.",
    )
    dedup_capacity: int = Field(
        default=200_000, ge=0, description="Recent event ids remembered per partition for dedup."
    )
    max_record_bytes: int = Field(default=1_048_576, ge=1024)
    join_ttl_s: float = Field(
        default=3600.0, gt=0, description="How long (event time) a prediction waits for feedback."
    )
    feedback_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="How long feedback that arrived before its prediction waits for it.",
    )
    max_pending_predictions: int = Field(
        default=1_000_000, ge=1, description="Predictions kept for the join, per partition."
    )

    # -- drift detection and alerting ------------------------------------------------
    alert_policy_file: Path | None = Field(
        default=None,
        description="YAML file of the alert policy (metric rules, grouping timers, retrain "
        "triggers); unset = the defaults of streams.alerting.AlertPolicyConfig.",
    )
    drift_events_per_false_alarm: float = Field(
        default=1_000_000,
        gt=0,
        description="False-alarm budget: at most one false drift alert per this many events "
        "per model, split across its features and segments.",
    )
    drift_numeric_detector: str = Field(
        default="cusum",
        description="Per-event detector of numeric features and the score, by name: cusum "
        "(calibrated, vectorised), adwin, page_hinkley or kswin (river's, slower).",
    )
    drift_concept_detector: str = Field(
        default="bernoulli_cusum",
        description="Detector of the error bits and feedback proxies, by name: "
        "bernoulli_cusum (calibrated), adwin, ddm, eddm or hddm_w (river's).",
    )
    drift_reference_first_n: int = Field(
        default=5000,
        ge=100,
        description="Events of a new model version taken as its reference when none was set.",
    )
    drift_checkpoint_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often a worker writes its drift detectors' state to the changelog, "
        "per partition (a worker that takes over resumes them from it).",
    )
    reference_refresh_s: float = Field(
        default=30.0, gt=0, description="How often a worker looks for new drift references."
    )
    drift_window_events: int = Field(
        default=1000, ge=50, description="Events per window of the reference comparisons."
    )
    drift_reassess_after: int = Field(
        default=2000,
        ge=0,
        description="A drift alarm called sudden is looked at again this many events (labelled "
        "outcomes, for concept drift) later, and relabelled gradual if a ramp fits better; 0: "
        "never.",
    )

    # -- the model registry and the rollout --------------------------------------------
    registry_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key that signs model artifacts (at least 16 bytes); without it "
        "the registry is read-only (list, show, promote, rollback, approve).",
    )
    registry_namespace: str = Field(
        default="driftloop:", description="Prefix of the model registry's Redis keys."
    )
    rollout_canary_fraction: float = Field(default=0.05, gt=0, lt=1)
    rollout_ramp_steps: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 1.0],
        description="Traffic shares of the challenger, step by step, each gated.",
    )
    rollout_require_approval: bool = Field(
        default=False, description="Wait for `driftloop models approve` before each step."
    )
    rollout_strategy: Literal["ramp", "blue_green"] = Field(
        default="ramp",
        description="After shadow: 'ramp' (canary, then the ramp steps) or 'blue_green' "
        "(one switch of all traffic, the champion kept warm, then promotion).",
    )
    gate_min_samples: int = Field(default=500, ge=1, description="Requests per arm per gate.")
    voice_cache_dir: Path = Field(
        default_factory=lambda: _default_cache_dir() / "voice",
        description="Where synthesised voice clips are kept (never in the repository).",
    )

    @model_validator(mode="after")
    def _fill_local_addresses(self) -> Settings:
        if not self.kafka_bootstrap_servers:
            self.kafka_bootstrap_servers = f"127.0.0.1:{self.kafka_port}"
        if not self.redis_url:
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        if not self.worker_app_id:
            self.worker_app_id = f"{self.topic_prefix}monitor"
        return self

    def topic(self, name: str) -> str:
        """The full topic name of a registry entry: prefix + name."""
        return f"{self.topic_prefix}{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (override in tests by passing your own)."""
    return Settings()
