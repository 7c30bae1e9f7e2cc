"""kill -9 of one part at a steady rate: nothing lost, nothing counted twice (issue 14).

The stack of this module is its own (nats-server, Tansu, FalkorDB: its servers get killed). The
same stream (`faults.make_stream`: 3,000 Kubernetes Events over 24 s in 8 namespaces, 48 pods of
24 workloads, each workload failing from its own moment on, so three shipped patterns match once
per workload all along the stream) goes, at its pace, through one isolated dataflow per test: a
`tapio worker --no-bridge` and a `tapio bridge`, as deployed. Once without a fault (the baseline),
then once per part, killed with SIGKILL when half of the stream is published and brought back at
once (`tapio up --state-dir` for a server, a new process for the others), the stream going on.

When every event is in the graph and every window has been evaluated past the last one, the run
must equal the baseline: every Event id in the graph exactly once, the same nodes and edges, the
same predictions (pattern, scope, event time, confidence, message, ids), and every window state
the same (each condition's count, distinct values, hits held, first and last hit), the tally
pattern holding each pod's Events exactly once; and, apart, the diagnose stage's diagnoses. The
baseline itself equals the offline runner (`agents.offline`, the same functions in one process).
The bridge is killed at a moment it holds messages it has not acknowledged (`faults.
kill_holding_messages`), a crash's worst case and the common one under a steady stream.

What a kill did wrong is fixed, and no part is an expected failure any more: a killed bridge's
messages in hand used to come back after ack_wait and count as late (`Bridge.take_over` bridges them
first now); a restarted worker, killed or restarting itself after Tansu lost its data, used to forget
the pods the diagnose stage had seen and diagnose each alone (its state is in a table now,
agents/diagnose_store.py).

Parts: the servers nats-server, Tansu (it comes back empty: the bridge recreates the topics and
bridges again what the graph lacks, the worker restarts itself, app.restart) and FalkorDB, the
bridge, the worker, and the collector (`tapio collect kubeapi` watching a Kubernetes API emulator,
kmock, where the stream's Events are created at their pace; restarted, it lists what is there and
watches again).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kmock
import kmock._internal.parsing as kmock_parsing
import msgspec
import pytest
import yaml
from faults import (
    Dataflow,
    Outcome,
    Pace,
    Stream,
    kill_and_restore,
    make_stream,
    patterns_with_tally,
    post_steadily,
    publish_steadily,
)
from waiting import until

from agents.catalog import Catalog
from agents.offline import match_events
from app.stack import EmbeddedStack, free_port, read_state
from app.workers import ChildProcess
from collectors.kubeapi import KINDS
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["nats", "tansu", "falkordb", "bridge", "worker", "collector"]

# every test of this module runs on one xdist process, in order: they share its stack and baseline
pytestmark = [pytest.mark.xdist_group("kill-one-part"), pytest.mark.timeout(600)]

# event time runs with the publishing schedule, from a moment in the past (the same for every run)
T0 = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
EVENTS_RESOURCE = kmock.resource("", "v1", "events")
_ORIGINAL_PARSE_PATH = kmock_parsing.parse_path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStack:
    stack = EmbeddedStack(tmp_path_factory.mktemp("kill-stack"))
    stack.start()
    yield stack
    stack.servers = read_state(stack.state_dir).servers  # the servers `tapio up` restarted
    stack.stop()


@pytest.fixture(scope="module")
def stream() -> Stream:
    return make_stream(T0)


@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return patterns_with_tally(tmp_path_factory.mktemp("patterns"), ROOT / "patterns")


async def run(stack: EmbeddedStack, stream: Stream, patterns: Path, tmp: Path, *, name: str,
              part: str | None = None, base: Settings | None = None) -> Outcome:
    """The stream through a dataflow of its own; with `part`, that part killed halfway and brought back."""
    flow = Dataflow(base or stack.settings(), name, patterns, tmp, free_port())
    publishing: asyncio.Future | None = None
    try:
        await flow.ready(stream)
        pace = Pace(total=len(stream.events))
        if part == "collector":
            return await _through_collector(flow, stream, pace, stack, tmp, name)
        publishing = asyncio.ensure_future(publish_steadily(flow.settings, stream.raw_events, stream.offsets, pace))
        if part is not None:
            await _halfway(flow, pace, publishing)
            await _kill(flow, stream, part, stack)
        await publishing
        return _dumped(name, await flow.outcome(stream))
    finally:
        if publishing is not None:
            publishing.cancel()  # a failure before the end: stop publishing
        flow.stop()


def _dumped(name: str, outcome: Outcome) -> Outcome:
    """KILL_TEST_DUMP=folder: each run's outcome as JSON there, to compare runs by hand."""
    if os.environ.get("KILL_TEST_DUMP"):
        Path(os.environ["KILL_TEST_DUMP"], f"{name}.json").write_bytes(msgspec.json.encode(outcome))
    return outcome


async def _halfway(flow: Dataflow, pace: Pace, source: asyncio.Future) -> None:
    await until(lambda: pace.halfway.is_set() or source.done(), timeout=120, procs=flow.procs,
                what="half of the stream published")
    if source.done():
        source.result()  # its error, if it failed


async def _kill(flow: Dataflow, stream: Stream, part: str, stack: EmbeddedStack, **kw: object) -> None:
    ids = [e.id for e in stream.raw_events]
    before = await flow.in_graph(ids)
    said = await kill_and_restore(part, flow, state_dir=stack.state_dir, **kw)
    assert 0 < before < len(ids), f"{said} with {before} of {len(ids)} events in the graph: not mid-stream"


async def _through_collector(flow: Dataflow, stream: Stream, pace: Pace, stack: EmbeddedStack,
                             tmp: Path, name: str) -> Outcome:
    """The stream created in a Kubernetes API emulator at its pace, published by `tapio collect
    kubeapi` watching it (Events only: the pods were published first, as in every run); the
    collector killed halfway and started again."""
    kmock_parsing.parse_path = _parse_path_listing_namespaces
    try:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
            for spec in KINDS:
                emulator.resources[f"{spec.api_version}/{spec.plural}"] = kmock.ResourceInfo(
                    kind=spec.kind, namespaced=spec.namespaced)
            config = _kubeconfig(tmp / "kubeconfig", str(emulator.url).rstrip("/"))
            starts = 0

            def collector() -> ChildProcess:
                nonlocal starts
                starts += 1
                return ChildProcess(flow.settings, ["collect", "kubeapi", "--kubeconfig", str(config),
                                                    "--context", "emulator", "--kinds", "events"],
                                    name=f"collector-{starts}", log_dir=flow.logs)
            flow.others.append(collector())
            await until(lambda: emulator._buses[EVENTS_RESOURCE].consumer_count >= 1, timeout=60, every=0.05,
                        procs=flow.procs, what="the collector to watch the Events")
            posting = asyncio.ensure_future(post_steadily(emulator, stream.events, stream.offsets, pace))
            try:
                await _halfway(flow, pace, posting)
                await _kill(flow, stream, "collector", stack, collector=collector)
                await posting
                return _dumped(name, await flow.outcome(stream))
            finally:  # before the emulator's end: its server waits for the open watches to end
                posting.cancel()
                for proc in flow.others:
                    proc.stop()
    finally:
        kmock_parsing.parse_path = _ORIGINAL_PARSE_PATH


def _parse_path_listing_namespaces(path: str) -> kmock_parsing.ParsedPath:
    """As tests/collectors/test_kubeapi.py: kmock 0.8 cannot parse `/api/v1/namespaces` itself."""
    if path.strip("/").split("/") == ["api", "v1", "namespaces"]:
        return kmock_parsing.ParsedPath(group="", version="v1", plural="namespaces")
    return _ORIGINAL_PARSE_PATH(path)


def _kubeconfig(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emu", "cluster": {"server": url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emu", "user": "u"}}]}))
    return path


@pytest.fixture(scope="module")
async def baseline(stack: EmbeddedStack, stream: Stream, patterns: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    return await run(stack, stream, patterns, tmp_path_factory.mktemp("baseline"), name="kill-baseline")


def _same(what: str, got: dict | list, want: dict | list) -> None:
    """An assertion that names what differs, not two walls of values."""
    if got == want:
        return
    if isinstance(got, dict) and isinstance(want, dict):
        diff = {k: (got.get(k), want.get(k)) for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)}
        raise AssertionError(f"{what}: {len(diff)} differ (got, baseline): {dict(list(diff.items())[:20])}")
    raise AssertionError(f"{what}: only in the run {sorted(set(got) - set(want))[:20]}, "
                         f"only in the baseline {sorted(set(want) - set(got))[:20]}")


async def test_without_a_fault_every_event_counts_once_and_the_predictions_are_the_offline_runners(
        baseline: Outcome, stream: Stream, patterns: Path) -> None:
    assert baseline.event_ids == {i: 1 for i in stream.ids}
    assert baseline.tallies == stream.per_pod()
    offline = match_events(stream.raw_pods + stream.raw_events, Catalog(patterns))
    assert offline.late == 0 and offline.errors == []
    expected: dict[str, list] = {}
    for p in offline.predictions:
        expected.setdefault(f"{p.pattern}|{p.scope}|{p.type}", []).append(
            [p.at.isoformat(), p.confidence, p.message, p.id, p.match_id])
    assert len(expected) == 24 and {k.split("|")[0] for k in expected} == {
        "liveness-death-spiral", "probe-failure", "image-pull-failure"}
    _same("predictions of the patterns", baseline.predictions, expected)


@pytest.fixture(scope="module")
async def faulted(request: pytest.FixtureRequest, stack: EmbeddedStack, stream: Stream, patterns: Path,
                  baseline: Outcome, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Outcome]:
    """The run with the part `request.param` killed (once per part: both tests of a part read it)."""
    part = request.param
    return part, await run(stack, stream, patterns, tmp_path_factory.mktemp(f"kill-{part}"), name=f"kill-{part}",
                           part=part)


def parts(known: dict[str, pytest.MarkDecorator]) -> list:
    return [pytest.param(part, marks=known.get(part, ()), id=part) for part in PARTS]


def _mine(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if not k.endswith(" (diagnoses)")}


def _diagnoses(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if k.endswith(" (diagnoses)") and not k.startswith("MATCHES")}


def _same_as_baseline(got: Outcome, baseline: Outcome, stream: Stream) -> None:
    """Every Event once, each pod's tally exact, and windows, quiet periods, predictions, nodes and edges
    (other than the diagnoses') as in the run without a fault."""
    _same("Event nodes per id", got.event_ids, {i: 1 for i in stream.ids})
    _same(f"tally windows, events per pod ({got.late_hits} hits dropped as late)", got.tallies, stream.per_pod())
    _same("window states", got.windows, baseline.windows)
    _same("windows quiet after their match", got.quiet, baseline.quiet)
    _same("predictions", got.predictions, baseline.predictions)
    _same("nodes per label", _mine(got.nodes), _mine(baseline.nodes))
    _same("edges per type", _mine(got.edges), _mine(baseline.edges))


def _same_diagnoses(got: Outcome, baseline: Outcome) -> None:
    _same("diagnoses", got.diagnoses, baseline.diagnoses)
    _same("their nodes", _diagnoses(got.nodes), _diagnoses(baseline.nodes))
    _same("their edges other than evidence", _diagnoses(got.edges), _diagnoses(baseline.edges))


@pytest.mark.parametrize("faulted", parts({}), indirect=True)
async def test_kill_9_of_one_part_loses_and_double_counts_nothing(
        faulted: tuple[str, Outcome], baseline: Outcome, stream: Stream) -> None:
    part, got = faulted
    _same_as_baseline(got, baseline, stream)


@pytest.mark.parametrize("faulted", parts({}), indirect=True)
async def test_kill_9_of_one_part_leaves_the_diagnoses_as_they_were(
        faulted: tuple[str, Outcome], baseline: Outcome) -> None:
    """The diagnose stage's diagnoses (updated in place as the stream goes on) end as without the
    fault. Not their evidence edges: a diagnosis updated several times within one batch of the
    graph sink is written once, with its last evidence (`core.records.by_match`), so how many
    evidence edges its updates leave depends on how the sink's batches fell."""
    part, got = faulted
    _same_diagnoses(got, baseline)


# --- recycling the embedded broker's topics (app.recycle) ---------------------------------------

RECYCLE_AFTER_MIB = 0.6  # the stream is ~2 MiB of MessagePack: a few recycles along it


@pytest.fixture(scope="module")
async def recycled(stack: EmbeddedStack, stream: Stream, patterns: Path, baseline: Outcome,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, str]:
    """The stream with the topics recycled every RECYCLE_AFTER_MIB bridged: each time the workers
    restart, the topics are dropped and made again, and JetStream gives back what the graph lacks."""
    base = stack.settings()
    base = msgspec.structs.replace(base, kafka=msgspec.structs.replace(base.kafka, recycle_after_mib=RECYCLE_AFTER_MIB))
    tmp = tmp_path_factory.mktemp("recycle")
    outcome = await run(stack, stream, patterns, tmp, name="recycle", base=base)
    logs = "".join(p.read_text(errors="replace") for p in (tmp / "logs").glob("*.log"))
    return outcome, logs


async def test_recycling_the_topics_along_the_stream_loses_and_double_counts_nothing(
        recycled: tuple[Outcome, str], baseline: Outcome, stream: Stream) -> None:
    got, logs = recycled
    assert logs.count("rebuilt the dataflow's topics in") >= 2, "the topics were not recycled along the stream"
    assert "restarting this worker" in logs
    _same_as_baseline(got, baseline, stream)


async def test_recycling_the_topics_leaves_the_diagnoses_as_they_were(
        recycled: tuple[Outcome, str], baseline: Outcome) -> None:
    got, _ = recycled
    _same_diagnoses(got, baseline)
