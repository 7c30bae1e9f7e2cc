"""End-to-end throughput of the running stack: JetStream publish -> bridge -> Faust agents -> graph.

    .venv/bin/python benchmarks/pipeline.py --events 200000

Starts its own embedded stack (nats-server, Tansu, FalkorDB) in a temporary folder, one
`tapio worker --no-bridge` (or `--workers N` of them in one group) and one `tapio bridge` process, publishes N Kubernetes Events
(stamped with their publish time) across several namespaces, and waits until every one is
an Event node in the graph. Prints:
- events/s end to end (first publish -> last event in the graph) and per stage
  (publish, bridge from the JetStream consumer's ack floor, each agent from the worker's
  `/tapio/stages/` page),
- publish-to-graph latency p50/p99 (the sink stamps `ingested_at` on each Event node),
- peak RSS of every process,
- the ratio to the 10,000 events/s bar,
- pattern matching inside the dataflow with the whole catalog enabled: the p99 time from the
  match stage taking an event to its window being updated and evaluated (bar: 100 ms).
With `--rate R` (a steady offered load, e.g. `make soak`: 2,000 events/s for 10 minutes) it
also prints each process's RSS slope over the second half of the load, the RSS at the end against
the 1 GiB bar, and the graph lag (events published and not yet in the graph) every 5 s.
Exit code 1 if any event is missing from the graph.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.faust_app import SERVICE_NAMES, STAGE_NAMES  # noqa: E402
from app.jetstream import EventPublisher, connect, ensure_streams  # noqa: E402
from app.stack import EmbeddedStack, free_port  # noqa: E402
from app.workers import start_bridge, start_worker, with_worker_port  # noqa: E402
from benchmarks.profiles import Profile  # noqa: E402
from core.events import RawEvent, content_id  # noqa: E402
from core.settings import Settings  # noqa: E402
from topology import queries  # noqa: E402
from topology.graph import open_graph  # noqa: E402
from topology.retention import pruned_events  # noqa: E402

TARGET = 10_000
#: predictions are looked for among those of the last minute (event time): one first seen later is not timed
PREDICTION_WINDOW_MS = 60_000
PREDICTION_POLL_S = 0.05  # how often the graph is asked for new predictions (adds half of it to the figure on average)


def leave_only_profiles(root: Path) -> None:
    """The run's folder once its servers stopped: the py-spy profiles stay (their paths are printed),
    the servers' data and logs go (~0.3-1.2 GiB a run: 116 runs had left 29 GiB in /tmp)."""
    for path in root.iterdir():
        if path.is_file() and path.name.startswith("profile-"):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not any(root.iterdir()):
        root.rmdir()


def prediction_latency(seen: dict[str, tuple[int, int]], lateness_ms: int, made: int, *, until_ms: int,
                       early: bool = False) -> str:
    """Pure: the line on publish -> prediction in the graph, from each prediction's (time, first seen).
    With `early` (`match.early_firing`) a prediction is first seen provisional, from the hits in so far:
    the figure is the bar's, as measured; the predictions whose time is within the load count.
    Without it, a prediction waits for event time to pass its window by the allowed lateness: only the
    predictions whose window the load closed count (time + lateness <= `until_ms`, the end of the load;
    the last ones close when the bridge moves event time on while idle), and the figure is also given
    net of that wait."""
    seen = {k: v for k, v in seen.items() if v[0] + (0 if early else lateness_ms) <= until_ms}
    if not seen:
        return f"publish->prediction: no prediction timed ({made} made)"
    waits = sorted(first - at for at, first in seen.values())
    p = lambda values, q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    timed = f"{len(seen):,} predictions timed of {made:,} made ({PREDICTION_POLL_S * 1000:.0f} ms polls)"
    if early:
        return (f"publish->prediction in the graph (first seen, provisional or final): p50 {p(waits, 0.5):,} ms "
                f"p99 {p(waits, 0.99):,} ms (bar 500 ms: ratio {p(waits, 0.99) / 500:.2f}); {timed}")
    net = sorted(w - lateness_ms for w in waits)
    return (f"publish->prediction in the graph: p50 {p(waits, 0.5):,} ms p99 {p(waits, 0.99):,} ms; less the "
            f"allowed lateness ({lateness_ms:,} ms, the wait for event time to close a window): p50 "
            f"{p(net, 0.5):,} ms p99 {p(net, 0.99):,} ms (bar 500 ms: ratio {p(net, 0.99) / 500:.2f}); {timed}")


#: (weight, reason, type) of Kubernetes Events in the `real` mix: the shares of the recordings in
#: shared/realdata (910 events: 84 % Normal, 15 % Warning, scheduling and pull failures first)
REAL_MIX = [
    (30, "Scheduled", "Normal"), (14, "Pulled", "Normal"), (12, "Created", "Normal"), (12, "Started", "Normal"),
    (4, "Killing", "Normal"), (2, "ScalingReplicaSet", "Normal"), (2, "SuccessfulCreate", "Normal"),
    (7, "FailedScheduling", "Warning"), (3, "BackOff", "Warning"), (2, "Failed", "Warning"),
    (1, "Unhealthy", "Warning"), (1, "FailedMount", "Warning"),
]
_REAL = [(reason, kind) for weight, reason, kind in REAL_MIX for _ in range(weight)]


def make_event(i: int, run: str, namespaces: int, pods: int, mix: str = "warnings") -> RawEvent:
    """Event i of the run: `warnings` makes every one a BackOff (each one a hit for the catalog,
    the worst case for matching); `real` draws reasons in the shares of real recordings."""
    ns = f"bench-{i % namespaces}"
    pod = f"web-{(i // namespaces) % pods}"
    reason, kind = ("BackOff", "Warning") if mix == "warnings" else _REAL[(i * 7919) % len(_REAL)]
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    data = msgspec.json.encode({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{pod}.{i}", "namespace": ns, "uid": f"{run}-{i}"},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns, "uid": f"{ns}-{pod}"},
        "reason": reason, "message": f"{reason}: container web in pod {pod}",
        "type": kind, "count": 1 + i % 7, "source": {"component": "kubelet", "host": f"node-{i % 13}"},
        "firstTimestamp": stamp, "lastTimestamp": stamp,
    })
    return RawEvent(id=content_id(run, str(i)), timestamp=now, type="kubeapi", data=data,
                    metadata={"namespace": ns, "kind": "Event", "action": "EVENT", "reason": reason})


async def changelog_records(settings: Settings) -> dict[str, int]:
    """Records in each table changelog topic (highwaters from a fetch: Tansu's ListOffsets is low)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from app.transport import fetched_highwaters
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await consumer.start()
    try:
        out = {}
        for table in ("tapio-members", "tapio-windows", "tapio-watermarks"):
            topic = f"{settings.worker.app_id}-{table}-changelog"
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            listed = await consumer.end_offsets(tps) if tps else {}
            highs = await fetched_highwaters(settings.kafka.bootstrap_servers, tps, listed) if tps else {}
            out[table] = sum(highs.values())
        return out
    finally:
        await consumer.stop()


async def topic_bytes(settings: Settings) -> dict[str, tuple[int, int]]:
    """topic -> (records, key + value bytes) of every topic the broker holds, read from its start.

    Tansu keeps every record in memory for good: this is what the run left in its RAM."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from app.transport import fetched_highwaters
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=50, max_partition_fetch_bytes=16 * 2**20)
    await consumer.start()
    try:
        topics = sorted(await consumer.topics())
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        highs = await fetched_highwaters(settings.kafka.bootstrap_servers, tps, await consumer.end_offsets(tps))
        wanted = {tp: h for tp, h in highs.items() if h > 0}
        out = {t: (0, 0) for t in topics}
        if not wanted:
            return out
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        deadline = time.monotonic() + 120
        while wanted and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=20_000)).items():
                n, size = out[tp.topic]
                out[tp.topic] = (n + len(records), size + sum(len(r.key or b"") + len(r.value or b"") for r in records))
                if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        return out
    finally:
        await consumer.stop()


class Sampler:
    """Peak RSS per process and the bridge's progress, sampled in the background."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak: dict[str, int] = {name: 0 for name in pids}
        self.cpu: dict[str, float] = {name: 0.0 for name in pids}
        self.cpu_start = self.cpu_seconds()
        self.series: dict[str, list[tuple[float, int]]] = {}  # name -> (monotonic s, RSS bytes)

    def cpu_seconds(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            try:
                t = proc.cpu_times()
                out[name] = t.user + t.system
            except psutil.Error:
                out[name] = self.cpu.get(name, 0.0)
        return out

    def sample(self) -> None:
        at = time.monotonic()
        for name, proc in self.procs.items():
            try:
                rss = proc.memory_info().rss
            except psutil.Error:
                continue
            self.peak[name] = max(self.peak[name], rss)
            self.series.setdefault(name, []).append((at, rss))
        now = self.cpu_seconds()
        self.cpu = {name: now[name] - self.cpu_start.get(name, 0.0) for name in now}


def slope_mib_per_min(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, MiB per minute (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mt) * (r - mr) for t, r in points) / var * 60 / 2**20


def second_half(points: list[tuple[float, int]], start: float, end: float) -> list[tuple[float, int]]:
    middle = start + (end - start) / 2
    return [(t, r) for t, r in points if middle <= t <= end]


def memory_page(port: int, *, reset: bool = False, start: bool = False) -> dict:
    """The worker's /tapio/memory/ (its answer when not tracing too: the RocksDB part)."""
    query = "?reset=1" if reset else "?start=1" if start else ""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/tapio/memory/{query}", timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 404: not tracing
        return json.loads(e.read())


def first_n(rows: list[dict]) -> int:
    """A count query's value (an empty result counts as 0)."""
    return rows[0]["n"] if rows else 0


def stages(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/tapio/stages/", timeout=5) as r:
        return json.loads(r.read())


def merged_stages(pages: list[dict]) -> dict:
    """The stage counters of several workers of one group: events and rates add up."""
    if len(pages) == 1:
        return pages[0]
    out: dict = {"timings": {}}
    for page in pages:
        for name, value in page.items():
            if name == "timings":  # percentiles do not add up: the worst worker's, over all samples
                for timing, t in value.items():
                    worst = out["timings"].setdefault(timing, {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0,
                                                               "max_ms": 0.0})
                    worst["samples"] += t["samples"]
                    for field in ("p50_ms", "p99_ms", "max_ms"):
                        worst[field] = max(worst[field], t[field])
                continue
            seen = out.setdefault(name, {"events": 0, "batches": 0, "rate": 0.0})
            for field in ("events", "batches", "rate"):
                seen[field] += value[field]
    return out


def table_partitions(settings: Settings) -> list[int]:
    """The partitions of the windows table a worker holds (its share of the group), or []."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.web_port}/tapio/tables/", timeout=5) as r:
            tables = json.loads(r.read())["tables"]
    except OSError:
        return []
    return next((t["partitions"] for t in tables if t["name"] == "tapio-windows"), [])


def with_setting(settings: Settings, assignment: str) -> Settings:
    """`section.field=value` (`--set`, e.g. `kafka.fetch_max_wait_ms=10`) applied to the settings."""
    path, sep, value = assignment.partition("=")
    section, _, name = path.partition(".")
    current = getattr(settings, section, None)
    fields = {f.name: f.type for f in msgspec.structs.fields(current)} if isinstance(current, msgspec.Struct) else {}
    if not sep or name not in fields:
        raise SystemExit(f"--set {assignment!r}: expected section.field=value with a field of "
                         f"core.settings (e.g. kafka.fetch_max_wait_ms=10)")
    typed = msgspec.convert(value, fields[name], strict=False)
    return msgspec.structs.replace(settings, **{section: msgspec.structs.replace(current, **{name: typed})})


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="tapio-bench-"))
    stack = EmbeddedStack(root, bolt_port=None)
    settings: Settings = stack.start()
    settings = with_worker_port(settings, free_port())
    if args.trace_memory:
        settings = msgspec.structs.replace(settings, worker=msgspec.structs.replace(settings.worker, trace_memory=True))
    settings = msgspec.structs.replace(settings, kafka=msgspec.structs.replace(settings.kafka, partitions=args.partitions))
    if args.recycle_after_mib is not None:  # the embedded broker's recycles (app.recycle): each restarts the workers
        settings = msgspec.structs.replace(settings, kafka=msgspec.structs.replace(
            settings.kafka, recycle_after_mib=args.recycle_after_mib))
    if args.graph_max_events is not None:
        settings = msgspec.structs.replace(settings, graph=msgspec.structs.replace(
            settings.graph, max_events=args.graph_max_events))
    if args.patterns is not None:  # an empty folder measures the dataflow without matching
        settings = msgspec.structs.replace(settings, match=msgspec.structs.replace(
            settings.match, patterns_dir=str(Path(args.patterns).resolve())))
    for assignment in args.set:
        settings = with_setting(settings, assignment)
    split = [s for s in (args.split or ("sink" if args.split_sink else "")).split(",") if s]
    everything = [*STAGE_NAMES, *SERVICE_NAMES]  # --split moves some to a second process, the rest stay
    worker = start_worker(settings, with_bridge=False,
                          stages=[s for s in everything if s not in split] if split else None)
    workers = {"worker": worker}
    group = [settings]  # the workers of the main group (--workers): one consumer group, partitions split
    for n in range(2, args.workers + 1):
        peer = with_worker_port(settings, free_port(), data_dir=str(root / f"worker-{n}"))
        group.append(peer)
        workers[f"worker-{n}"] = start_worker(peer, name=f"worker-{n}", with_bridge=False,
                                              stages=[s for s in everything if s not in split] if split else None)
    if split:  # these stages in a process of their own (their own consumer group)
        sink_settings = with_worker_port(settings, free_port(), data_dir=str(root / "second-worker"))
        workers["second-worker"] = start_worker(sink_settings, name="second-worker", with_bridge=False, stages=split)
    bridge = start_bridge(settings)
    pids = {s.name: s.pid for s in stack.servers} | {n: w.pid for n, w in workers.items()} | {"bridge": bridge.pid}
    sampler = Sampler(pids | {"benchmark": psutil.Process().pid})
    graph = open_graph(settings.graph)
    nc = await connect(settings.nats, name="bench")
    js = nc.jetstream()
    await ensure_streams(js, settings.nats)
    publisher = EventPublisher(js, settings.nats)
    try:
        # warm up: one event through the whole flow proves the group has joined
        warm = make_event(0, "warmup", 1, 1)
        await publisher.publish_many([warm])
        t = time.monotonic()
        while not first_n(await graph.query(queries.COUNT_EVENTS, ids=[warm.id])):
            if time.monotonic() - t > 120 or not worker.alive():
                print("worker never became ready:\n" + worker.log_tail(), file=sys.stderr)
                return 2
            await asyncio.sleep(0.2)
        if len(group) > 1:  # every worker of the group holds partitions before the clock starts
            while not all(table_partitions(peer) for peer in group):
                if time.monotonic() - t > 180 or not all(w.alive() for w in workers.values()):
                    print("the group never split the partitions", file=sys.stderr)
                    return 2
                await asyncio.sleep(0.5)
            print("partitions: " + ", ".join(f"worker :{peer.worker.web_port} {table_partitions(peer)}"
                                             for peer in group))
        async def accounted() -> int:
            """Event nodes in the graph plus those graph retention deleted (`graph.max_events`)."""
            return first_n(await graph.query(queries.COUNT_ALL_EVENTS)) + await pruned_events(graph)

        base_count = await accounted()
        if args.trace_memory:
            memory_page(settings.worker.web_port, reset=True)  # the baseline
        print(f"stack and worker ready in {time.monotonic() - t:.1f}s after warm-up publish; "
              f"publishing {args.events} events over {args.namespaces} namespaces ...")

        run_id = f"run-{time.time_ns()}"
        sample_every = max(1, args.events // 5000)
        lat: list[int] = []  # publish -> graph (ms) of every sample_every-th event, read while it is in the graph
        sampled = 0  # samples [0, sampled) asked for
        pending: list[str] = []  # asked for and not in the graph yet: asked again next time

        async def read_samples(upto: int) -> None:
            """Read the ingest time of the samples published before `upto` (retention may delete them later)."""
            nonlocal sampled, pending
            ids = pending + [content_id(run_id, str(i)) for i in range(sampled * sample_every, upto, sample_every)]
            sampled = max(sampled, -(-upto // sample_every))
            rows = await graph.query(queries.EVENT_TIMES, ids=ids) if ids else []
            lat.extend(r["ingested_at"] - r["timestamp"] for r in rows)
            pending = sorted(set(ids) - {r["id"] for r in rows})
        # publish -> prediction: the wall time each Prediction node was first seen in the graph, against
        # its event time (events carry their publish time); a window closes only once event time is
        # `match.allowed_lateness_s` past it, so that wait is printed apart (`prediction_latency`)
        seen_predictions: dict[str, tuple[int, int]] = {}  # id -> (its time, first seen), epoch ms
        before_run = first_n(await graph.query(queries.COUNT_PREDICTIONS))

        async def watch_predictions(since_ms: int) -> None:
            while True:
                now_ms = int(time.time() * 1000)
                rows = await graph.query(queries.PREDICTIONS_SINCE, since=max(since_ms, now_ms - PREDICTION_WINDOW_MS))
                for r in rows:
                    seen_predictions.setdefault(r["id"], (r["at"], now_ms))
                await asyncio.sleep(PREDICTION_POLL_S)

        ack_progress: list[tuple[float, int]] = []
        lags: list[tuple[float, int]] = []  # (seconds into the run, events published and not in the graph)

        memory: list[tuple[float, dict]] = []  # (seconds into the run, the worker's /tapio/memory/ native part)

        async def watch() -> None:
            next_look = 0.0
            while True:
                sampler.sample()
                info = await js.consumer_info(settings.nats.stream, settings.nats.bridge_durable)
                ack_progress.append((time.monotonic(), info.ack_floor.stream_seq))
                if args.rate and time.monotonic() >= next_look:  # what the worker's memory is made of, now and then
                    next_look = time.monotonic() + 20
                    try:
                        page = await asyncio.to_thread(memory_page, settings.worker.web_port)
                        memory.append((time.monotonic() - start, page))
                    except OSError:  # the worker restarting (a topic recycle): look again next time
                        pass
                await asyncio.sleep(0.25)

        profiles = [Profile(pids[name], root / f"profile-{name}.txt", idle=args.profile_idle) for name in args.profile]

        async def start_profiles() -> None:  # stopped once the last event is in the graph
            await asyncio.sleep(args.profile_after)
            for profile in profiles:
                profile.start()
        profiling = asyncio.ensure_future(start_profiles())
        sampler.cpu_start = sampler.cpu_seconds()
        events = (make_event(i, run_id, args.namespaces, args.pods, args.mix) for i in range(args.events))
        if args.backlog:
            # JetStream holds the whole stream before the bridge starts: measures what the
            # stack drains when no collector competes for the same two cores.
            bridge.stop()
            start = time.monotonic()
            published = await publisher.publish_many(events)
            publish_s = time.monotonic() - start
            bridge = start_bridge(settings, name="bridge-backlog")
            sampler.procs["bridge"] = psutil.Process(bridge.pid)
            sampler.cpu_start = sampler.cpu_seconds()
            start = time.monotonic()
            watcher = asyncio.ensure_future(watch())
        elif args.rate:
            # a steady offered load: latency at a rate the stack sustains, without a backlog
            watcher = asyncio.ensure_future(watch())
            start = time.monotonic()
            predictions_watcher = asyncio.ensure_future(watch_predictions(int(time.time() * 1000)))
            published, tick = 0, max(1, args.rate // 20)
            next_lag = start
            trace_at = start + args.trace_memory_after if args.trace_memory_after else None
            reset_at = trace_at + args.trace_memory_reset if trace_at and args.trace_memory_reset else None
            while published < args.events:
                if trace_at is not None and time.monotonic() >= trace_at:
                    memory_page(settings.worker.web_port, start=True)
                    print(f"tracing the worker's memory from {time.monotonic() - start:.0f}s into the load")
                    trace_at = None
                if reset_at is not None and time.monotonic() >= reset_at:
                    memory_page(settings.worker.web_port, reset=True)
                    print(f"the worker's memory baseline taken {time.monotonic() - start:.0f}s into the load")
                    reset_at = None
                chunk = [next(events) for _ in range(min(tick, args.events - published))]
                published += await publisher.publish_many(chunk)
                if time.monotonic() >= next_lag:  # graph lag: published, not yet in the graph
                    in_graph = await accounted() - base_count
                    lags.append((time.monotonic() - start, published - in_graph))
                    if settings.graph.max_events:  # read the samples before retention deletes them
                        await read_samples(max(0, in_graph - 10_000))
                    next_lag = time.monotonic() + 5
                await asyncio.sleep(max(0.0, start + published / args.rate - time.monotonic()))
            publish_s = time.monotonic() - start
            load_end_ms = int(time.time() * 1000)
        else:
            watcher = asyncio.ensure_future(watch())
            start = time.monotonic()
            published = await publisher.publish_many(events)
            publish_s = time.monotonic() - start
        found = 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            found = await accounted() - base_count
            if found >= args.events:
                break
            await asyncio.sleep(0.1)
        total_s = time.monotonic() - start
        profiling.cancel()
        if args.rate:
            await asyncio.sleep(2)  # the predictions of the windows the load closed, still on their way
            predictions_watcher.cancel()
        for profile in profiles:
            profile.stop()
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            print(f"warning: sampling stopped early ({watcher.exception()!r}): RSS slopes and the ack "
                  f"progress cover only the time before", file=sys.stderr)
        watcher.cancel()
        sampler.sample()

        await read_samples(args.events)
        lat.sort()
        per_stage = merged_stages([stages(peer.worker.web_port) for peer in group])
        if split:
            second = stages(sink_settings.worker.web_port)
            per_stage = {**per_stage, **second, "timings": {**per_stage.get("timings", {}),
                                                             **second.get("timings", {})}}
        first_seq = next((s for _, s in ack_progress if s > 1), 1)
        moving = [(t, s) for t, s in ack_progress if s > first_seq]
        bridge_rate = ((moving[-1][1] - first_seq) / (moving[-1][0] - start)) if moving else 0.0
        # the ack floor counts messages; a message holds a batch of events (app.jetstream.batch_messages)
        stream = await js.stream_info(settings.nats.stream)
        per_message = published / max(1, stream.state.last_seq - 1)  # less the warm-up's one message

        rate = found / total_s
        print(f"\nevents in graph: {found}/{args.events} ({published} acked by JetStream), mix {args.mix}")
        mode = "backlog drain (bridge start -> last event in graph)" if args.backlog else "end to end (first publish -> last event in graph)"
        print(f"{mode}: {rate:,.0f} events/s over {total_s:.1f}s  (target {TARGET:,}/s: ratio {rate / TARGET:.2f})")
        print(f"  publish    {published / publish_s:,.0f} events/s")
        print(f"  bridge     {bridge_rate * per_message:,.0f} events/s (JetStream ack floor: {bridge_rate:,.0f} "
              f"messages/s of {per_message:,.1f} events)")
        timings = per_stage.pop("timings", {})
        for name, s in per_stage.items():
            print(f"  {name:<10} {s['rate']:,.0f} events/s  ({s['events']} events in {s['batches']} batches)")
        port = sink_settings.worker.web_port if "match" in split else settings.worker.web_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/tapio/patterns/", timeout=5) as r:
            catalog = json.loads(r.read())
        print(f"patterns enabled: {len(catalog['patterns'])} ({catalog['directory']})")
        if "match_latency" in timings:
            m = timings["match_latency"]
            print(f"pattern match per hit (select took the event -> its window evaluated): p50 {m['p50_ms']:,.1f} ms "
                  f"p99 {m['p99_ms']:,.1f} ms max {m['max_ms']:,.1f} ms over {m['samples']:,} hits "
                  f"(bar 100 ms: ratio {m['p99_ms'] / 100:.2f})")
        if "gc_full" in timings:  # app.gc_tuning: the worker's full garbage collections stop its event loop
            g = timings["gc_full"]
            print(f"full garbage collections in the worker: {g['samples']:,}, pause p50 {g['p50_ms']:,.1f} ms "
                  f"max {g['max_ms']:,.1f} ms")
        if lat:
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
            print(f"latency publish->graph: p50 {p(0.50):,} ms  p99 {p(0.99):,} ms  max {lat[-1]:,} ms "
                  f"({len(lat)} sampled events)")
        if args.rate:
            made = first_n(await graph.query(queries.COUNT_PREDICTIONS)) - before_run
            print(prediction_latency(seen_predictions, int(settings.match.allowed_lateness_s * 1000), made,
                                     until_ms=load_end_ms, early=settings.match.early_firing))
        try:
            changelog = await changelog_records(settings)
        except (Exception, asyncio.CancelledError) as e:  # aiokafka's stop was seen cancelling itself: go on
            print(f"table changelog records: not read ({type(e).__name__}: {e})")
        else:
            hits = per_stage.get("hits", {}).get("events", 0)
            print("table changelog records: " + ", ".join(f"{name} {n:,}" for name, n in changelog.items())
                  + f" ({sum(changelog.values()) / max(found, 1):.3f} per event, {hits:,} hits)")
        if args.topic_bytes:
            sizes = await topic_bytes(settings)
            total = sum(b for _, b in sizes.values())
            print(f"Kafka (Tansu) holds {total / 2**20:,.1f} MiB of keys and values "
                  f"({total / max(found, 1):,.0f} bytes per event): "
                  + ", ".join(f"{t.removeprefix(settings.worker.app_id + '-')} {b / 2**20:,.1f} MiB/{n:,}"
                              for t, (n, b) in sorted(sizes.items(), key=lambda kv: -kv[1][1]) if n))
        print("CPU seconds during the run: " + ", ".join(f"{n} {c:.1f}" for n, c in sampler.cpu.items()))
        per_event = {n: c / max(found, 1) * 1e6 for n, c in sampler.cpu.items()}
        total_us = sum(per_event.values())
        print("CPU us per event: " + ", ".join(f"{n} {us:.0f}" for n, us in per_event.items())
              + f"; all {total_us:.0f} (bar 200 us, 10,000 events/s on 2 cores: ratio {total_us / 200:.2f})")
        print("peak RSS: " + ", ".join(f"{n} {b / 2**20:,.0f} MiB" for n, b in sampler.peak.items()))
        if args.rate:  # a steady load: does memory stay flat, does the graph keep up?
            end_of_load = start + publish_s
            slopes = {n: slope_mib_per_min(second_half(pts, start, end_of_load)) for n, pts in sampler.series.items()}
            print("RSS slope over the second half of the load (MiB/min): "
                  + ", ".join(f"{n} {v:+,.1f}" for n, v in slopes.items()))
            last = {n: pts[-1][1] for n, pts in sampler.series.items() if pts}
            worst = max(last.values(), default=0)
            print("RSS at the end: " + ", ".join(f"{n} {b / 2**20:,.0f} MiB" for n, b in last.items())
                  + f"  (bar 1 GiB per process: worst ratio {worst / 2**30:.2f})")
            if lags:
                print(f"graph lag (published, not yet in the graph; every 5 s): max {max(v for _, v in lags):,}, "
                      f"at the end of the load {lags[-1][1]:,}, over the second half "
                      + ", ".join(f"{v:,}" for t, v in lags if t >= publish_s / 2)[:300])
        if memory:
            print("worker memory (MiB) every 20 s: seconds, RSS anon, malloc in use / free, Python small blocks "
                  "(thousands), RocksDB memtables + block caches")
            for at, page in memory:
                proc, rocks = page.get("process_mib", {}), page.get("rocksdb_mib", {})
                native = sum(v["memtables"] + v["block_cache"] + v["table_readers"] for v in rocks.values())
                print(f"  {at:5.0f}  {proc.get('rssanon', 0):7.1f}  {proc.get('malloc_in_use', 0):7.1f} / "
                      f"{proc.get('malloc_free', 0):6.1f}  {proc.get('python_blocks', 0) / 1000:7.0f}  {native:6.1f}")
        rocks = memory_page(settings.worker.web_port).get("rocksdb_mib", {})
        print("worker's RocksDB stores (MiB: memtables, block cache, table readers; SST files on disk): "
              + ", ".join(f"{t.removeprefix('tapio-')} {v['memtables']}/{v['block_cache']}/{v['table_readers']}; "
                          f"{v['sst_files']}" for t, v in rocks.items()))
        if args.trace_memory or args.trace_memory_after:
            grown = memory_page(settings.worker.web_port).get("grown_since_baseline", [])
            since = f"{args.trace_memory_after + args.trace_memory_reset:.0f}s into the load" \
                if args.trace_memory_after else "the warm-up"
            print(f"worker's Python memory grown since {since} (tracemalloc, /tapio/memory/):")
            for row in grown[:20]:
                print(f"  {row['mib']:+8.1f} MiB {row['blocks']:+9,} blocks  {row['site']}")
        for name, profile in zip(args.profile, profiles, strict=True):
            print(f"\n{name} (py-spy, {profile.output}):")
            print("\n".join(profile.summary()))
        return 0 if found >= args.events else 1
    finally:
        await nc.drain()
        await graph.close()
        bridge.stop()
        for w in workers.values():
            w.stop()
        stack.stop()
        leave_only_profiles(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="a setting for this run (repeatable), e.g. kafka.fetch_max_wait_ms=10")
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=2,
                        help="partitions per topic (2 gives one worker the largest batches)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes in the group (each runs every stage; the partitions are split)")
    parser.add_argument("--split-sink", action="store_true",
                        help="run the graph sink in a second worker process (its own group); same as --split sink")
    parser.add_argument("--split", default="", metavar="STAGES",
                        help="run these stages (comma separated, e.g. match or match,predict) in a second worker "
                             "process, each subset in its own consumer group")
    parser.add_argument("--rate", type=int, default=0,
                        help="publish at this many events/s instead of as fast as possible (for latency)")
    parser.add_argument("--patterns", default=None, metavar="DIR",
                        help="pattern folder (default: the shipped catalog, all 15 patterns); an empty folder "
                             "measures the same dataflow with nothing to match")
    parser.add_argument("--mix", choices=["warnings", "real"], default="real",
                        help="real: Event reasons in the shares of real recordings (84%% Normal); warnings: every "
                             "event a BackOff warning, each one a hit for the catalog (worst case for matching)")
    parser.add_argument("--graph-max-events", type=int, default=None, metavar="N",
                        help="graph.max_events for the worker (default: the embedded stack's; 0: no cap); "
                             "events deleted by retention count as in the graph")
    parser.add_argument("--trace-memory", action="store_true",
                        help="run the worker with tracemalloc and print where its Python memory grew (slower)")
    parser.add_argument("--topic-bytes", action="store_true",
                        help="after the run, read every topic from its start and print its records and bytes")
    parser.add_argument("--trace-memory-after", type=float, default=0, metavar="SECONDS",
                        help="with --rate: start tracemalloc in the worker this far into the load and print what "
                             "grew from then on (the worker runs at full speed until then)")
    parser.add_argument("--trace-memory-reset", type=float, default=0, metavar="SECONDS",
                        help="with --trace-memory-after: take the baseline this long after tracing started, once "
                             "what was allocated before tracing (untraced) has turned over (e.g. a window's span); "
                             "else the growth printed is all that was allocated since tracing started and is alive")
    parser.add_argument("--profile", type=lambda v: [n for n in v.split(",") if n], default=[], metavar="PROCESSES",
                        help="py-spy the named processes (worker, bridge, worker-2, ...) while the load runs and "
                             "print where their CPU went (self and inclusive, by function)")
    parser.add_argument("--recycle-after-mib", type=float, default=None, metavar="MIB",
                        help="kafka.recycle_after_mib for this run (the embedded stack's default: app.stack; 0: never)")
    parser.add_argument("--profile-after", type=float, default=0.0, metavar="SECONDS",
                        help="start --profile this many seconds into the load (the late part of a run)")
    parser.add_argument("--profile-idle", action="store_true",
                        help="--profile counts the samples where a thread waits too: where the time goes, not the CPU")
    parser.add_argument("--backlog", action="store_true",
                        help="publish everything first, then start the bridge and time the drain")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
