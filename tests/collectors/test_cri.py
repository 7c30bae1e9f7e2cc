"""The CRI collector (`collectors.cri`): containerd's event envelopes read into the node collectors' RawEvents
(pure), then the collector against a real containerd started by the test (Debian `containerd` + `runc`, a
private root, state and socket: `nodesources.cri`), its containers run with `ctr` and labelled as the CRI
plugin labels them: a container that exits 3, one the kernel OOM-kills under a memory limit, one that keeps
running, an image tagged and removed, and containerd restarted under the collector. Needs root."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message
from waiting import until

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.containerd_api.events import container_pb2, image_pb2, task_pb2
from collectors.containerd_api.services.events.v1 import events_pb2
from collectors.cri import CriCollector, CriEvent, UnknownPayload, decode, exit_meaning, identity_of, node_events
from collectors.node import SourceUnavailable
from core.events import RawEvent

AT = datetime(2026, 12, 5, 3, 0, 1, 250000, tzinfo=UTC)
LABELS = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": "u-1",
          "io.kubernetes.container.name": "app", "io.cri-containerd.kind": "container"}


def envelope(topic: str, payload: Message, *, at: datetime = AT, namespace: str = "k8s.io") -> events_pb2.Envelope:
    out = events_pb2.Envelope(topic=topic, namespace=namespace,
                              event=any_pb2.Any(type_url=payload.DESCRIPTOR.full_name, value=payload.SerializeToString()))
    out.timestamp.FromDatetime(at)
    return out


# pure: envelope -> CriEvent -> RawEvent


def test_a_task_exit_is_read_with_its_status_and_exit_time_and_reads_as_the_pods_container_exit() -> None:
    exit_ = task_pb2.TaskExit(container_id="c" * 64, id="c" * 64, pid=4242, exit_status=3)
    exit_.exited_at.FromDatetime(datetime(2026, 12, 5, 3, 0, 1, tzinfo=UTC))
    event = decode(envelope("/tasks/exit", exit_))
    assert event is not None
    assert (event.container_id, event.pid, event.exit_status) == ("c" * 64, 4242, 3)
    assert event.at == datetime(2026, 12, 5, 3, 0, 1, tzinfo=UTC)  # exited_at, not the envelope's time
    spec = b'{"ociVersion": "1.0.2", "linux": {"cgroupsPath": "/kubepods/burstable/podu-1/' + b"c" * 64 + b'"}}'
    [raw] = node_events([event], {"c" * 64: identity_of(LABELS, "nginx:1", spec)}, node="node-1")
    md = raw.metadata
    assert (md["kind"], md["namespace"], md["name"], md["uid"]) == ("Pod", "shop", "web-0", "u-1")
    assert (md["reason"], md["kernel.exit_code"], md["container"], md["pid"]) == ("ContainerExit", "3", "app", "4242")
    assert (md["intent"], md["severity"]) == ("container-failure", "warning")
    assert md["message"] == f"container app ({'c' * 12}) exited with code 3"
    unified = normalize_event(enrich_event(raw))
    assert (unified.k8s.kind, unified.k8s.name, unified.kernel.pid) == ("Pod", "web-0", 4242)
    assert unified.kernel.cgroup == f"/kubepods/burstable/podu-1/{'c' * 64}"
    assert unified.kernel.detail["exit_code"] == "3" and md["image"] == "nginx:1"
    assert identity_of(LABELS, spec=b"not json").cgroup == "" and identity_of(LABELS, spec=b"{}").cgroup == ""


def test_exit_severity_follows_the_code() -> None:
    assert exit_meaning(0) == ("lifecycle", "lifecycle", "info")
    assert exit_meaning(143) == ("container-kill", "lifecycle", "info")
    assert exit_meaning(137) == ("container-kill", "lifecycle", "warning")
    assert exit_meaning(1) == ("container-failure", "availability", "warning")


def test_repeated_oom_notifications_of_one_kill_make_one_event_and_a_later_kill_another() -> None:
    oom = decode(envelope("/tasks/oom", task_pb2.TaskOOM(container_id="abc")))
    oom_again = decode(envelope("/tasks/oom", task_pb2.TaskOOM(container_id="abc"),
                                at=datetime(2026, 12, 5, 3, 0, 2, tzinfo=UTC)))
    exit_ = decode(envelope("/tasks/exit", task_pb2.TaskExit(container_id="abc", id="abc", exit_status=137)))
    start = decode(envelope("/tasks/start", task_pb2.TaskStart(container_id="abc", pid=9)))
    assert None not in (oom, oom_again, exit_, start)
    raws = node_events([oom, oom_again, exit_, start, oom_again], {}, node="node-1")  # type: ignore[list-item]
    reasons = [(r.metadata["reason"], r.metadata.get("kernel.signal", "")) for r in raws]
    assert reasons == [("ContainerOOM", ""), ("ContainerExit", "SIGKILL"), ("ContainerStart", ""), ("ContainerOOM", "")]
    assert raws[0].metadata["intent"] == "oom-kill" and raws[0].metadata["severity"] == "error"
    assert raws[0].metadata["kind"] == "Node"  # no labels known: about the node, with the container id
    assert raws[0].metadata["container_id"] == "abc" and raws[0].id != raws[3].id


def test_exec_processes_are_forwarded_only_when_they_fail_and_topics_not_read_are_skipped() -> None:
    ok = decode(envelope("/tasks/exit", task_pb2.TaskExit(container_id="abc", id="probe-1", exit_status=0)))
    failed = decode(envelope("/tasks/exit", task_pb2.TaskExit(container_id="abc", id="probe-2", exit_status=1)))
    deleted = decode(envelope("/tasks/delete", task_pb2.TaskDelete(container_id="abc", id="probe-2", exit_status=1)))
    raws = node_events([ok, failed, deleted], {}, node="n")  # type: ignore[list-item]
    assert [(r.metadata["reason"], r.metadata["exec_id"]) for r in raws] == [("ExecExit", "probe-2")]
    assert decode(envelope("/tasks/exec-added", task_pb2.TaskExecAdded(container_id="abc", exec_id="x"))) is None
    with pytest.raises(UnknownPayload, match="expected containerd.events.TaskOOM"):
        decode(envelope("/tasks/oom", task_pb2.TaskStart(container_id="abc")))


def test_image_and_container_changes() -> None:
    pulled = decode(envelope("/images/create", image_pb2.ImageCreate(name="docker.io/library/nginx:1")))
    created = decode(envelope("/containers/create", container_pb2.ContainerCreate(id="abc", image="nginx:1")))
    gone = decode(envelope("/containers/delete", container_pb2.ContainerDelete(id="abc")))
    raws = node_events([pulled, created, gone], {"abc": identity_of(LABELS)}, node="n")  # type: ignore[list-item]
    assert [(r.metadata["reason"], r.metadata["name"]) for r in raws] == [
        ("ImagePulled", "n"), ("ContainerCreated", "web-0"), ("ContainerDeleted", "web-0")]
    assert raws[0].metadata["message"] == "image docker.io/library/nginx:1 pulled or imported"
    assert isinstance(pulled, CriEvent) and pulled.image == "docker.io/library/nginx:1"


def test_a_sandbox_reads_as_its_pod() -> None:
    start = decode(envelope("/tasks/start", task_pb2.TaskStart(container_id="s" * 64, pid=7)))
    labels = {**LABELS, "io.cri-containerd.kind": "sandbox"}
    del labels["io.kubernetes.container.name"]
    [raw] = node_events([start], {"s" * 64: identity_of(labels)}, node="n")  # type: ignore[list-item]
    assert raw.metadata["message"] == f"sandbox {'s' * 12} of pod shop/web-0 started (pid 7)"
    assert raw.metadata["reason"] == "SandboxStart" and "container" not in raw.metadata
    killed = decode(envelope("/tasks/exit", task_pb2.TaskExit(container_id="s" * 64, id="s" * 64, exit_status=137)))
    [raw] = node_events([killed], {"s" * 64: identity_of(labels)}, node="n")  # type: ignore[list-item]
    assert (raw.metadata["reason"], raw.metadata["severity"], raw.metadata["name"]) == ("SandboxExit", "info", "web-0")


def test_a_missing_socket_says_which_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match=f"{tmp_path}/none.sock does not exist: run containerd"):
        CriCollector(node="n", socket=str(tmp_path / "none.sock")).check()
    (tmp_path / "file").write_text("")
    with pytest.raises(SourceUnavailable, match="is not a socket"):
        CriCollector(node="n", socket=str(tmp_path / "file")).check()


# a real containerd


@pytest.fixture(scope="module")
def containerd():
    from nodesources.cri import PrivateContainerd, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    folder = Path(tempfile.mkdtemp(prefix="tcri", dir="/tmp"))  # short: the socket path has a 108-byte limit
    started = None
    try:
        started = PrivateContainerd(folder)
        yield started
    finally:
        problems = started.stop() if started is not None else []
        assert not problems, problems


async def _until(events: list[RawEvent], found, what: str, timeout: float = 30.0) -> RawEvent:
    def look() -> RawEvent | None:
        return next((event for event in events if found(event.metadata)), None)

    return await until(look, timeout=timeout,
                       what=lambda: f"{what}; seen {[(e.metadata['reason'], e.metadata.get('container_id', '')) for e in events]}")


def pod_labels(pod: str, container: str) -> dict[str, str]:
    return {"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": "tapio-test",
            "io.kubernetes.pod.uid": f"uid-{pod}", "io.kubernetes.container.name": container,
            "io.cri-containerd.kind": "container"}


# with the real cluster's tests (one xdist worker, in turn): both run a containerd whose shims and ctr write
# under /run/containerd and whose containers' cgroups sit under k8s.io, and each takes away what it made
@pytest.mark.xdist_group("real-cluster")
async def test_containerds_exits_ooms_starts_and_images_reach_the_agent_as_the_pods_events(containerd) -> None:
    events: list[RawEvent] = []
    batches: list[int] = []

    async def emit(batch: list[RawEvent]) -> None:
        batches.append(len(batch))
        events.extend(batch)

    collector = CriCollector(node="node-t", socket=str(containerd.socket), every=0.2)
    collector.check()
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(emit, stop))
    try:
        await asyncio.wait_for(collector.connected.wait(), timeout=20)
        done = await asyncio.to_thread(containerd.run, "t-exit3", "sh", "-c", "exit 3",
                                       labels=pod_labels("exiter", "main"))
        assert done.returncode == 3, done.stderr
        done = await asyncio.to_thread(containerd.run, "t-oom", "sh", "-c", "head -c 200000000 /dev/zero | tail",
                                       labels=pod_labels("hog", "eater"), memory_limit=16 * 1024 * 1024)
        assert done.returncode == 137, done.stderr
        done = await asyncio.to_thread(containerd.run, "t-start", "sleep", "600", labels=pod_labels("sleeper", "s"),
                                       detach=True)
        assert done.returncode == 0, done.stderr
        await asyncio.to_thread(containerd.ctr, "images", "tag", "tapio.local/busybox:1", "tapio.local/copy:2")
        await asyncio.to_thread(containerd.ctr, "images", "rm", "tapio.local/copy:2")

        exit3 = await _until(events, lambda m: m["reason"] == "ContainerExit" and m.get("container_id") == "t-exit3",
                             "exit of t-exit3")
        md = exit3.metadata
        assert (md["kind"], md["namespace"], md["name"], md["uid"]) == ("Pod", "tapio-test", "exiter", "uid-exiter")
        assert (md["container"], md["kernel.exit_code"], md["severity"]) == ("main", "3", "warning")
        assert md["kernel.cgroup"] == "/k8s.io/t-exit3"  # ctr's cgroupsPath, read from the container's OCI spec
        await _until(events, lambda m: m["reason"] == "ContainerStart" and m.get("container_id") == "t-exit3",
                     "start of t-exit3")

        oom = await _until(events, lambda m: m["reason"] == "ContainerOOM" and m.get("container_id") == "t-oom",
                           "OOM of t-oom")
        assert (oom.metadata["name"], oom.metadata["container"], oom.metadata["intent"]) == ("hog", "eater", "oom-kill")
        killed = await _until(events, lambda m: m["reason"] == "ContainerExit" and m.get("container_id") == "t-oom",
                              "exit of t-oom")
        assert (killed.metadata["kernel.exit_code"], killed.metadata["kernel.signal"]) == ("137", "SIGKILL")
        assert killed.timestamp >= oom.timestamp

        start = await _until(events, lambda m: m["reason"] == "ContainerStart" and m.get("container_id") == "t-start",
                             "start of t-start")
        assert start.metadata["name"] == "sleeper" and int(start.metadata["pid"]) > 1
        await _until(events, lambda m: m["reason"] == "ImagePulled" and m.get("image") == "tapio.local/copy:2",
                     "the tagged image")
        await _until(events, lambda m: m["reason"] == "ImageDeleted" and m.get("image") == "tapio.local/copy:2",
                     "the removed image")
        ooms = [e for e in events if e.metadata["reason"] == "ContainerOOM" and e.metadata.get("container_id") == "t-oom"]
        assert len(ooms) == 1  # containerd told it more than once
        assert len({e.id for e in events}) == len(events) and max(batches) <= 500 and collector.lost() == 0

        # containerd restarts: the collector reconnects and goes on
        subscriptions = collector.subscriptions
        await asyncio.to_thread(containerd.restart)
        await until(lambda: collector.subscriptions > subscriptions, timeout=30,
                    what="a new subscription after containerd restarted")
        done = await asyncio.to_thread(containerd.run, "t-after", "sh", "-c", "exit 0", labels=pod_labels("later", "l"))
        assert done.returncode == 0, done.stderr
        after = await _until(events, lambda m: m["reason"] == "ContainerExit" and m.get("container_id") == "t-after",
                             "an exit after the restart")
        assert (after.metadata["name"], after.metadata["severity"]) == ("later", "info")
        # the container started before the restart is still known (listed again on reconnecting)
        await asyncio.to_thread(containerd.ctr, "tasks", "kill", "-s", "SIGKILL", "t-start")
        killed = await _until(events, lambda m: m["reason"] == "ContainerExit" and m.get("container_id") == "t-start",
                              "the kill of t-start after the restart")
        assert (killed.metadata["name"], killed.metadata["kernel.exit_code"]) == ("sleeper", "137")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)


def test_the_vendored_api_modules_are_what_the_generation_script_makes(tmp_path: Path) -> None:
    import containerd_protos

    try:
        containerd_protos.generate(tmp_path)
    except containerd_protos.MissingSource as e:
        pytest.skip(str(e))
    vendored = Path(__file__).resolve().parents[2] / "collectors" / "containerd_api"
    made = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    kept = {p.relative_to(vendored): p.read_bytes() for p in vendored.rglob("*")
            if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts}
    assert sorted(made) == sorted(kept)
    assert [name for name in made if made[name] != kept[name]] == []
