"""A single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1.

The broker's jars come from Maven Central through ``mvn`` once, into
``<cache_dir>/kafka-<version>/libs``; each state directory gets its own
configuration, data and log under ``<state_dir>/kafka``.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import uuid
from importlib import resources
from pathlib import Path

from driftloop.infra.process import (
    LOOPBACK,
    Echo,
    InfraError,
    LocalService,
    MissingToolError,
    file_size,
    port_accepts,
)
from streams.settings import Settings

__all__ = [
    "LOG4J2_CONFIG",
    "KafkaBroker",
    "ensure_kafka_libs",
    "kafka_libs_dir",
    "new_cluster_id",
    "render_server_properties",
]

INSTALL_HINT = "install with: apt-get install maven openjdk-17-jre-headless, or run `make deps`"

#: The line the broker logs once it serves clients.
READY_LINE = b"Kafka Server started"

LOG4J2_CONFIG = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      # The clients and coordinators inside the broker are chatty at INFO.
      - name: org.apache.kafka
        level: WARN
"""


def render_server_properties(settings: Settings, data_dir: Path) -> str:
    """The ``server.properties`` of the local single-node broker.

    Parameters
    ----------
    settings
        Supplies ``kafka_port`` and ``kafka_controller_port``.
    data_dir
        The broker's ``log.dirs``.

    Returns
    -------
    str
        The file's text; every listener is on 127.0.0.1.

    Examples
    --------
    >>> s = Settings(kafka_port=19092, kafka_controller_port=19093, _env_file=None)
    >>> text = render_server_properties(s, Path("/srv/kafka/data"))
    >>> print(text.splitlines()[3])
    listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093
    >>> "log.dirs=/srv/kafka/data" in text
    True
    """
    broker = f"{LOOPBACK}:{settings.kafka_port}"
    controller = f"{LOOPBACK}:{settings.kafka_controller_port}"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={controller}",
        f"listeners=PLAINTEXT://{broker},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{broker},CONTROLLER://{controller}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        # One broker: every internal topic has exactly one replica.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # Nobody else will join a consumer group on a laptop; do not wait 3 s for them.
        "group.initial.rebalance.delay.ms=0",
        # faust creates its internal topics by producing to them.
        "auto.create.topics.enable=true",
    ]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A fresh KRaft cluster id, as ``kafka-storage random-uuid`` makes them.

    Made here rather than by the tool to save one JVM start.

    Examples
    --------
    >>> cid = new_cluster_id()
    >>> len(cid), cid.startswith("-")
    (22, False)
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka refuses ids starting with '-' (they read as command-line options).
        if not cid.startswith("-"):
            return cid


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(f"`{tool}` was not found on PATH; {INSTALL_HINT}")
    return path


def kafka_libs_dir(settings: Settings) -> Path:
    """Where the jars of ``settings.kafka_version`` are (or will be) cached."""
    return settings.cache_dir.expanduser().absolute() / f"kafka-{settings.kafka_version}" / "libs"


def ensure_kafka_libs(settings: Settings, echo: Echo = print) -> Path:
    """The directory of Kafka broker jars, fetched from Maven Central if absent.

    The jars are fetched into a temporary sibling directory and renamed into
    place, so an interrupted fetch never leaves a half-filled cache behind.

    Parameters
    ----------
    settings
        Supplies ``cache_dir`` and ``kafka_version``.
    echo
        Receives progress messages.

    Returns
    -------
    Path
        ``<cache_dir>/kafka-<version>/libs``.

    Raises
    ------
    MissingToolError
        When ``mvn`` is needed but not installed.
    InfraError
        When Maven fails.
    """
    version = settings.kafka_version
    libs = kafka_libs_dir(settings)
    home = libs.parent
    if (libs / f"kafka_2.13-{version}.jar").is_file():
        return libs
    mvn = _require("mvn")
    home.parent.mkdir(parents=True, exist_ok=True)
    echo(f"kafka: fetching Apache Kafka {version} from Maven Central into {home} (once)")
    tmp = Path(tempfile.mkdtemp(prefix=f".kafka-{version}.", dir=home.parent))
    try:
        template = resources.files("driftloop.infra").joinpath("kafka-runtime.pom.xml")
        pom = tmp / "pom.xml"
        pom.write_text(template.read_text().replace("@KAFKA_VERSION@", version))
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp / 'libs'}",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 or not (tmp / "libs" / f"kafka_2.13-{version}.jar").is_file():
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise InfraError(
                f"kafka: Maven could not fetch Kafka {version} (exit {result.returncode}); "
                f"check network access to Maven Central and kafka_version.\n{output}"
            )
        # mkdtemp makes the directory private; the cache is as readable as any other.
        tmp.chmod(0o755)
        if home.exists():
            # A directory left without libs/ by some other means; ours replaces it.
            shutil.rmtree(home)
        try:
            tmp.rename(home)
        except OSError:
            # Another process finished the same fetch first; its copy is as good.
            if not libs.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


class KafkaBroker(LocalService):
    """The local Kafka broker described by a :class:`~streams.settings.Settings`.

    Parameters
    ----------
    settings
        Ports, version, heap, state and cache directories, start timeout.
    """

    name = "kafka"
    stop_timeout_s = 30.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir, settings.start_timeout_s)
        self.settings = settings

    @property
    def ports(self) -> list[tuple[int, str]]:
        """The client and controller ports, with the variables that change them."""
        return [
            (self.settings.kafka_port, "DRIFTLOOP_KAFKA_PORT"),
            (self.settings.kafka_controller_port, "DRIFTLOOP_KAFKA_CONTROLLER_PORT"),
        ]

    @property
    def port(self) -> int:
        """The client (PLAINTEXT) port."""
        return self.settings.kafka_port

    @property
    def data_dir(self) -> Path:
        """The broker's ``log.dirs``."""
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        """The broker's console output."""
        return self.home / "server.log"

    @property
    def properties_file(self) -> Path:
        """The broker's ``server.properties``."""
        return self.home / "server.properties"

    @property
    def log4j_file(self) -> Path:
        """The broker's Log4j2 configuration."""
        return self.home / "log4j2.yaml"

    def is_ours(self, cmdline: str) -> bool:
        """A JVM running ``kafka.Kafka`` on this state directory's properties."""
        return "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline

    def check_tools(self) -> None:
        """``java``, and ``mvn`` while the jars are not cached yet."""
        _require("java")
        if not kafka_libs_dir(self.settings).is_dir():
            _require("mvn")

    def prepare(self, echo: Echo) -> None:
        """Fetch the jars if needed, write the configuration, format storage once."""
        java = _require("java")
        ensure_kafka_libs(self.settings, echo)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(render_server_properties(self.settings, self.data_dir))
        self.log4j_file.write_text(LOG4J2_CONFIG)
        if (self.data_dir / "meta.properties").is_file():
            return
        echo(f"kafka: formatting storage in {self.data_dir}")
        result = subprocess.run(
            [
                java,
                *self._jvm_classpath(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                new_cluster_id(),
                "-c",
                str(self.properties_file),
            ],
            capture_output=True,
            text=True,
            cwd=self.home,
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise InfraError(
                f"kafka: formatting {self.data_dir} failed (exit {result.returncode}); "
                f"if it holds data from another Kafka, delete it.\n{output}"
            )

    def command(self) -> list[str]:
        """``java … kafka.Kafka server.properties`` with the configured heap."""
        heap = self.settings.kafka_heap
        return [
            _require("java"),
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            *self._jvm_classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]

    def ready(self, log_offset: int) -> bool:
        """The broker logged that it started, after ``log_offset``, and its port answers."""
        if file_size(self.log_file) <= log_offset:
            return False
        with self.log_file.open("rb") as fh:
            fh.seek(log_offset)
            started = READY_LINE in fh.read()
        return started and port_accepts(self.port)

    def explain_failure(self, log_text: str) -> str:
        """Advice for a taken port, or for a data directory from another cluster or node."""
        advice = super().explain_failure(log_text)
        if not advice and "meta.properties" in log_text:
            advice = (
                f"{self.data_dir} holds data this configuration cannot use; "
                f"delete {self.data_dir} to start with an empty broker"
            )
        return advice

    def _jvm_classpath(self) -> list[str]:
        # Java expands the trailing '*' itself; no shell is involved.
        return [
            "-cp",
            f"{kafka_libs_dir(self.settings)}/*",
            f"-Dlog4j2.configurationFile={self.log4j_file}",
        ]
