"""Configuration: one YAML file, overridable by environment variables.

Fed by: the CLI (`--config`), `TAPIO_CONFIG`, or the endpoints file `tapio up` writes into
the state directory. Feeds: every adapter (NATS, Kafka, graph) and the Faust app.

Resolution order, later wins:
1. built-in defaults (loopback ports of a stack you run yourself);
2. the embedded stack's endpoints file (`<state_dir>/stack.yaml`) when `tapio up` is running;
3. the YAML file named by `--config` or `TAPIO_CONFIG`;
4. environment variables `TAPIO_<SECTION>_<FIELD>`, e.g. `TAPIO_GRAPH_URI=neo4j://db:7687`,
   `TAPIO_KAFKA_BOOTSTRAP_SERVERS=k1:9092,k2:9092` (lists are comma separated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from core.kube.redact import DEFAULT_SAFE_ENV


class ConfigError(Exception):
    """The configuration is unreadable or a value has the wrong type: fix the named file or variable."""


class NatsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    urls: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    stream: str = "EVENTS"
    subject_prefix: str = "events"
    replicas: int = 1
    max_msgs: int = 1_000_000
    max_age_s: float = 24 * 3600
    duplicate_window_s: float = 120
    deadletter_stream: str = "DEADLETTER"
    deadletter_prefix: str = "deadletter"
    bridge_durable: str = "tapio-bridge"
    bridge_fetch: int = 5000  # messages per Kafka produce round
    bridge_linger_s: float = 0.1  # how long a round waits to fill up (the pull request's expiry)
    bridge_ack_wait_s: float = 30.0
    bridge_max_ack_pending: int = 20000
    # a message Kafka refuses for what it is (too large, invalid) is tried this many times, then
    # dead-lettered and terminated; one Kafka cannot take at all (down, no leader) waits for it
    bridge_max_deliver: int = 5
    # an event whose JSON is larger than this is dead-lettered by the bridge (NATS' own default
    # max_payload is the same 1 MiB; a server configured for more must not let one event fill a batch)
    bridge_max_event_bytes: int = 1024 * 1024
    # `tapio bridge` (on its own) serves /healthz and /metrics on bridge_web_host:bridge_web_port; 0: none
    bridge_web_host: str = "127.0.0.1"
    bridge_web_port: int = 0
    publish_in_flight: int = 2000
    # a publish carries many events of one subject as one JSON array (app.jetstream.batch_messages):
    # at most this many events and this many bytes (the server's max_payload bounds it too)
    publish_batch_events: int = 500
    publish_batch_bytes: int = 256 * 1024
    # key-value bucket of what the graph holds (sink sequence per partition) and of the Kafka epoch
    # in use: the bridge's recovery when Kafka lost data (app.checkpoint)
    progress_bucket: str = "tapio-progress"


class KafkaSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    bootstrap_servers: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1:9092"])
    topic_prefix: str = "tapio"
    partitions: int = 4
    replication: int = 1
    # Tansu makes a consumer wait the whole fetch_max_wait_ms even when data is there
    # (shared/notes/stack.md); Faust hard-codes 1500 ms. 50 ms keeps a hop under 100 ms.
    fetch_max_wait_ms: int = 50
    # how every producer of the dataflow (the bridge, the workers' agents and changelogs) compresses
    # its record batches: none, gzip, snappy, lz4 or zstd. zstd (level 3) cuts the embedded Tansu's
    # memory per event ~8x (it keeps batches as sent) and costs the least CPU of those measured:
    # aiokafka's lz4 is LZ4 HC (level 9), a fifth of a worker's CPU (benchmarks/README.md)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    # Tansu completes a group join only after session_timeout / 2.
    session_timeout_s: float = 10.0
    # Tansu's ListOffsets(LATEST) is wrong for batched produce (shared/notes/stack.md): table
    # recovery reads the highwater from a fetch response instead (app.transport).
    probe_highwaters: bool = True
    # how often the bridge and the worker check that the broker still holds the dataflow's data
    # (app.kafka_epoch); a loss makes the bridge re-bridge from JetStream and the worker restart
    epoch_check_s: float = 2.0
    # the embedded Tansu keeps every record in memory, with no retention (shared/notes/stack.md): a
    # bridge asks for the dataflow's topics to be recycled (app.recycle) each time it has bridged this
    # many MiB; 0: never (a real Kafka trims its topics by retention). `tapio up` stacks turn it on.
    recycle_after_mib: float = 0.0
    # how long a recycle waits for the workers to stop reading, and after which a claimed one that
    # has not finished is taken over (its runner died)
    recycle_grace_s: float = 2.0
    # before asking, a bridge stops bridging until the dataflow holds what it bridged, at most this long
    recycle_drain_s: float = 20.0
    recycle_timeout_s: float = 60.0

    @property
    def compression_type(self) -> str | None:
        """`compression` as aiokafka and Faust take it (None: uncompressed)."""
        return None if self.compression == "none" else self.compression


class GraphSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    uri: str = "falkordb://127.0.0.1:6379"
    name: str = "tapio"  # FalkorDB graph key, or Neo4j database
    username: str = ""
    password: str = ""
    # events per write statement (and matches per insights statement). The sink's statements go one at
    # a time from the worker's event loop, and each answer waits for the loop's next turn, behind the
    # other agents' batches: with 500, a burst's graph writes fell behind the flow and FalkorDB idled
    # until the windows were done (8,185-9,206 events/s end to end); with 5,000 they keep pace
    # (10,246-11,843, benchmarks/README.md). Neo4j's guidance for UNWIND writes is 1,000-10,000 rows.
    batch_size: int = 5000
    # retention of Event nodes (topology.retention), run by the leader of the sink's worker group:
    # an event the sink wrote more than `retention_s` ago is deleted (0: kept for ever), and above
    # `max_events` Event nodes the oldest are deleted down to 90 % of it (0: no cap; FalkorDB holds
    # the graph in memory, ~1 KiB an event). Events a match or a cause cites always stay; the cap
    # also keeps changes (config edits, rollouts). Deleted events are counted, never silent.
    retention_s: float = 0.0
    max_events: int = 0
    prune_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.retention_s < 0 or self.max_events < 0 or self.prune_interval_s <= 0:
            raise ValueError("graph.retention_s and graph.max_events must be >= 0 (0: off) and "
                             "graph.prune_interval_s > 0")


class WorkerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    app_id: str = "tapio"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = ""  # RocksDB tables and Faust's files; empty: <state_dir>/worker
    log_level: str = "info"
    # which dataflow stages this worker runs (all by default); see app.faust_app.group_id
    stages: list[str] = msgspec.field(
        default_factory=lambda: ["enrich", "normalize", "match", "predict", "sink", "diagnose", "topology"])
    # trace Python allocations (tracemalloc, ~2x slower) and serve them at /tapio/memory/
    trace_memory: bool = False
    # the cyclic garbage collector's thresholds (gc.set_threshold) for the worker, after the start-up
    # heap is frozen (app.gc_tuning): Python's defaults (700, 10, 10) pause a busy worker ~200 ms
    gc_thresholds: list[int] = msgspec.field(default_factory=lambda: [50_000, 20, 100])

    def __post_init__(self) -> None:
        if len(self.gc_thresholds) != 3 or min(self.gc_thresholds) < 1:
            raise ValueError(f"worker.gc_thresholds must be three numbers >= 1 (young, middle, full), "
                             f"not {self.gc_thresholds}")


def _default_patterns_dir() -> str:
    # the shipped catalog: the `patterns` package beside `core`, in a checkout or an installed
    # wheel alike (found by path: the core imports nothing of the project)
    return str(Path(__file__).resolve().parent.parent / "patterns")


class MatchSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    patterns_dir: str = msgspec.field(default_factory=_default_patterns_dir)
    reload_interval_s: float = 0.25  # how often the pattern folder is looked at (hot reload)
    # event-time watermark: how late (in event time) an event may arrive and still count
    allowed_lateness_s: float = 10.0
    # a pattern that holds on the hits in so far is sent at once as a provisional match, confirmed or
    # withdrawn once event time passes it (agents/windows.py); false: final matches only, a lateness later
    # (a prediction ~10 s after its cause; early firing costs 3-20 % more of the worker's CPU: benchmarks/README.md)
    early_firing: bool = True
    # when no event arrives for this long (wall clock), the bridge moves the watermark on by the
    # time that passed, so the last windows of a quiet stream still close
    idle_advance_s: float = 5.0
    # the event-time guard (agents.partition_windows.beyond_wall_clock): an event stamped more than
    # this far ahead of the wall clock is dead-lettered by the bridge and never moves event time
    max_ahead_s: float = 300.0


class ApiSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The HTTP API the worker serves on worker.web_host:web_port (app.api)."""

    # bearer token the write endpoints (POST /api/v1/feedback) require; empty: writes are refused
    token: str = ""
    max_body_bytes: int = 64 * 1024  # a larger request body is refused (413) before it is read
    probe_timeout_s: float = 2.0  # how long /readyz waits for NATS, Kafka and the graph each
    # /readyz is not ready while a part with work waiting has taken none of it for this long
    stall_after_s: float = 30.0

    def __post_init__(self) -> None:
        # the token is compared exactly; HTTP strips whitespace around a header value, so a token
        # that starts or ends with it could never be sent: refuse it here rather than 401 forever
        if self.token != self.token.strip():
            raise ValueError("api.token starts or ends with whitespace (a newline from a file?): remove it")


class FeedbackSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How feedback moves a pattern's confidence (agents.confidence)."""

    # pseudo-votes assumed accurate: accuracy = (accurate + prior) / (total + prior)
    prior_count: float = 5.0
    # a pattern with at least this many votes on its current version whose accuracy (raw) is
    # below disable_below makes no predictions until its accuracy rises or its version changes
    min_feedback: int = 10
    disable_below: float = 0.3
    refresh_interval_s: float = 2.0  # how often a worker's predict stage re-reads the votes


class SecretsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What may be shown of values that can be secret (core.kube.redact)."""

    # environment variables whose values are not secret, shown as they are in change records and
    # events; every other env value is replaced by `sha256:<hex>` before anything is published or
    # stored (Secret data always is). The default names only values that never hold a credential;
    # list yours (TAPIO_SECRETS_SAFE_ENV=LOG_LEVEL,TZ,REPLICA_MODE) or set [] to hash every one.
    safe_env: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_SAFE_ENV))


class AgentSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`tapio agent`: the node collectors one process runs on a node (app.agent)."""

    # the node the events are about; empty: NODE_NAME (the DaemonSet's downward API), then the hostname
    node: str = ""
    only: list[str] = msgspec.field(default_factory=list)  # run just these collectors (empty: every one)
    disable: list[str] = msgspec.field(default_factory=list)  # never run these
    # a site's own collectors beside the shipped ones: name -> "module:Class" (collectors.node's contract)
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    # keyword arguments a collector is built with, per collector: {cri: {socket: /run/k3s/containerd.sock}}
    options: dict[str, dict[str, str | int | float | bool | list[str]]] = msgspec.field(default_factory=dict)
    web_host: str = "127.0.0.1"  # /healthz and /readyz; the DaemonSet serves them on the node's address
    web_port: int = 6067
    check_timeout_s: float = 10.0  # a collector whose check() takes longer is unavailable
    # a collector that fails at run time is restarted after restart_initial_s, doubling to restart_max_s;
    # one that had run restart_reset_s before failing starts over at restart_initial_s
    restart_initial_s: float = 1.0
    restart_max_s: float = 60.0
    restart_reset_s: float = 60.0
    stop_grace_s: float = 10.0  # on SIGTERM, how long the collectors get to hand over their last batch

    def __post_init__(self) -> None:
        if self.restart_initial_s <= 0 or self.restart_max_s < self.restart_initial_s or self.stop_grace_s <= 0:
            raise ValueError("agent.restart_initial_s and agent.stop_grace_s must be > 0 and "
                             "agent.restart_max_s >= agent.restart_initial_s")


class OtelSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Traces (`app.tracing`): a span per batch per stage, linked to the events' own trace contexts."""

    endpoint: str = ""  # OTLP/HTTP traces URL (http://collector:4318/v1/traces); "" = no spans are made
    service_name: str = "tapio"
    max_links: int = 32  # links to events' trace contexts per span (the first of the batch)
    # the worker's counters by OTLP/HTTP too (http://collector:4318/v1/metrics), every metrics_interval_s
    metrics_endpoint: str = ""
    metrics_interval_s: float = 15.0


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    graph: GraphSettings = msgspec.field(default_factory=GraphSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    match: MatchSettings = msgspec.field(default_factory=MatchSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    feedback: FeedbackSettings = msgspec.field(default_factory=FeedbackSettings)
    secrets: SecretsSettings = msgspec.field(default_factory=SecretsSettings)
    agent: AgentSettings = msgspec.field(default_factory=AgentSettings)
    otel: OtelSettings = msgspec.field(default_factory=OtelSettings)
    state_dir: str = ".tapio"


def with_absolute_dirs(settings: Settings, cwd: Path | None = None) -> Settings:
    """The state and worker data directories as absolute paths, relative ones taken from `cwd`.

    Faust changes into the worker's directory before it creates it, so a relative data dir
    would name a folder below itself; an isolated run derives its folders from the state dir.
    """
    base = (cwd or Path.cwd()).resolve()
    state = base / settings.state_dir
    data = base / settings.worker.data_dir if settings.worker.data_dir else state / "worker"
    worker = msgspec.structs.replace(settings.worker, data_dir=str(data))
    return msgspec.structs.replace(settings, state_dir=str(state), worker=worker)


def state_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("TAPIO_STATE_DIR", ".tapio"))


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read configuration {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"configuration {path} must be a mapping at the top level")
    return loaded


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    fields = {name: cls for name, cls in (
        ("nats", NatsSettings), ("kafka", KafkaSettings),
        ("graph", GraphSettings), ("worker", WorkerSettings), ("match", MatchSettings),
        ("api", ApiSettings), ("feedback", FeedbackSettings), ("secrets", SecretsSettings),
        ("agent", AgentSettings),
    )}
    for section, cls in fields.items():
        for field in msgspec.structs.fields(cls):
            var = f"TAPIO_{section.upper()}_{field.name.upper()}"
            if var not in environ or str(field.type).startswith("dict"):  # a mapping is set in the file
                continue
            raw = environ[var]
            value: Any = [v.strip() for v in raw.split(",") if v.strip()] if str(field.type).startswith("list") else raw
            sections.setdefault(section, {})[field.name] = value
    if "TAPIO_STATE_DIR" in environ:
        sections["state_dir"] = environ["TAPIO_STATE_DIR"]
    return sections


def load_settings(config: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, the running embedded stack, a file and the environment."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    state_dir = state_dir_from_env(environ)
    stack_file = state_dir / "stack.yaml"
    if stack_file.exists():
        data = _merge(data, _read_yaml(stack_file).get("settings", {}))
    config = config or environ.get("TAPIO_CONFIG")
    if config:
        data = _merge(data, _read_yaml(Path(config)))
    data = _merge(data, _env_overrides(environ))
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as e:
        where = config or "environment / stack.yaml"
        raise ConfigError(f"invalid configuration ({where}): {e}") from e
    return with_absolute_dirs(settings)


def to_yaml(settings: Settings) -> str:
    text: str = yaml.safe_dump(msgspec.to_builtins(settings), sort_keys=False)
    return text


def isolated(settings: Settings, name: str) -> Settings:
    """The same servers, a dataflow of its own: stream, subjects, bridge consumer, topics, group,
    tables and graph are all named after `name`, so it neither sees nor touches any other."""
    settings = with_absolute_dirs(settings)
    token = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "isolated"
    upper = token.upper().replace("-", "_")
    nats = msgspec.structs.replace(settings.nats, stream=f"EVENTS_{upper}", subject_prefix=f"events-{token}",
                                   deadletter_stream=f"DEADLETTER_{upper}", deadletter_prefix=f"deadletter-{token}",
                                   bridge_durable=f"tapio-bridge-{token}", progress_bucket=f"tapio-progress-{token}")
    kafka = msgspec.structs.replace(settings.kafka, topic_prefix=f"tapio-{token}")
    worker = msgspec.structs.replace(settings.worker, app_id=f"tapio-{token}",
                                     data_dir=str(Path(settings.worker.data_dir).parent / f"worker-{token}"))
    graph = msgspec.structs.replace(settings.graph, name=f"{settings.graph.name}-{token}")
    return msgspec.structs.replace(settings, nats=nats, kafka=kafka, worker=worker, graph=graph)
