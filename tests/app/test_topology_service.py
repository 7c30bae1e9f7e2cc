"""The topology service's state machine, pure: object observations in, topology and change events out."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.topology_service import TopologyState
from core.events import RawEvent
from core.kube.objects import raw_event_from_object

SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"


def observation(obj: dict, action: str, when: datetime) -> RawEvent:
    event = raw_event_from_object(obj, action=action, source="test")
    return RawEvent(id=event.id, timestamp=when, type=event.type, data=event.data, metadata=event.metadata)


def configmap() -> dict:
    items = json.loads((SCENARIO / "objects.json").read_text())["items"]
    return next(o for o in items if o["kind"] == "ConfigMap")


def test_an_edit_becomes_a_change_event_and_an_older_copy_changes_nothing() -> None:
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    before = configmap()
    after = copy.deepcopy(before)
    after["data"]["nginx.conf"] += "\n# edited"
    after["metadata"]["resourceVersion"] = "99999"
    state = TopologyState()
    first, none = state.observe(observation(before, "SNAPSHOT", t0))
    assert none is None and [n.name for n in first.upsert] == ["nginx-config"]
    _, edit = state.observe(observation(after, "MODIFIED", t0 + timedelta(seconds=5)))
    assert edit is not None and edit.metadata["action"] == "CHANGE"
    assert edit.metadata["message"] == "ConfigMap shop/nginx-config: key nginx.conf modified"
    assert edit.timestamp == t0 + timedelta(seconds=5) and edit.metadata["resource_version"] == "99999"
    assert state.observe(observation(after, "MODIFIED", t0 + timedelta(seconds=6)))[1] is None  # nothing new
    rebuilt = TopologyState()  # a restart reads the objects topic again: the same edit, the same id
    rebuilt.observe(observation(before, "SNAPSHOT", t0))
    assert rebuilt.observe(observation(after, "MODIFIED", t0 + timedelta(seconds=5)))[1].id == edit.id
    stale, no_edit = state.observe(observation(before, "SNAPSHOT", t0))  # a recording replayed out of order
    assert stale.empty and no_edit is None
    gone, _ = state.observe(observation(after, "DELETED", t0 + timedelta(seconds=9)))
    assert [n.name for n in gone.deleted] == ["nginx-config"]


def test_a_pod_deleted_with_a_grace_period_is_deleted() -> None:
    """`kubectl delete` (30 s of grace), the kubelet stopping the container 2 s later and deleting with
    grace 0, the object gone. Dated by its deadline, the MODIFIED were at 10:00:30 and the DELETED
    (whose deadline the grace 0 moved back) at 10:00:02: dropped as older, the pod stayed in the graph."""
    requested = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    def at(seconds: int) -> str:
        return f"{requested + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%SZ}"

    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-0", "namespace": "shop", "uid": "uid-web-0", "resourceVersion": "100",
                        "creationTimestamp": at(-86400)},
           "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx"}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "web", "state": {"running": {
               "startedAt": at(-86400)}}}]}}
    asked = copy.deepcopy(pod)
    asked["metadata"].update(resourceVersion="101", deletionTimestamp=at(30), deletionGracePeriodSeconds=30)
    stopped = copy.deepcopy(asked)
    stopped["metadata"]["resourceVersion"] = "102"
    stopped["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "finishedAt": at(2)}}
    gone = copy.deepcopy(stopped)
    gone["metadata"].update(resourceVersion="103", deletionTimestamp=at(0), deletionGracePeriodSeconds=0)
    state = TopologyState()
    state.observe(raw_event_from_object(pod, action="SNAPSHOT", source="list"))
    changes = [state.observe(raw_event_from_object(o, action=a, source="watch"))[0]
               for a, o in (("MODIFIED", asked), ("MODIFIED", stopped), ("DELETED", gone))]
    assert [n.name for n in changes[-1].deleted] == ["web-0"]


def test_an_edit_back_to_the_version_before_the_last_edit_is_a_revert() -> None:
    """`kubectl rollout undo`, a ConfigMap restored: a remedy (reason Reverted), not a cause."""
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    good = configmap()
    bad = copy.deepcopy(good)
    bad["data"]["nginx.conf"] += "\n# broken"
    state = TopologyState()
    state.observe(observation(good, "SNAPSHOT", t0))
    edits = []
    for i, version in enumerate([bad, good, bad], start=1):  # the edit, its revert, and the edit again
        obj = copy.deepcopy(version)
        obj["metadata"]["resourceVersion"] = str(1000 + i)
        edits.append(state.observe(observation(obj, "MODIFIED", t0 + timedelta(minutes=i)))[1])
    assert [e.metadata["reason"] for e in edits] == ["Changed", "Reverted", "Reverted"]
    assert edits[1].metadata["message"] == ("ConfigMap shop/nginx-config: key nginx.conf modified (reverted to its "
                                            "version before the edit of 2026-11-20 10:01:00Z)")
    third = copy.deepcopy(bad)
    third["data"]["nginx.conf"] += "\n# another"
    third["metadata"]["resourceVersion"] = "1004"
    assert state.observe(observation(third, "MODIFIED", t0 + timedelta(minutes=4)))[1].metadata["reason"] == "Changed"


def test_a_controller_scaling_its_replicaset_back_is_not_a_revert() -> None:
    """A real cluster's rollout back to a fixed ConfigMap: the Deployment controller scaled an old
    ReplicaSet 1 -> 2 -> 1, and explain said that 'undid the edit behind the failure'."""
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-5977864ffb", "namespace": "shop", "uid": "rs-1", "resourceVersion": "1000",
                       "creationTimestamp": "2026-11-20T09:00:00Z",
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                            "uid": "d-1", "controller": True}]},
          "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
    state = TopologyState()
    state.observe(observation(rs, "SNAPSHOT", t0))
    reasons = []
    for i, replicas in enumerate([2, 1], start=1):
        obj = copy.deepcopy(rs)
        obj["spec"]["replicas"] = replicas
        obj["metadata"]["resourceVersion"] = str(1000 + i)
        reasons.append(state.observe(observation(obj, "MODIFIED", t0 + timedelta(minutes=i)))[1].metadata["reason"])
    assert reasons == ["Changed", "Changed"]


async def test_change_events_jetstream_does_not_take_are_held_and_published_once_it_does(embedded) -> None:
    """Real nats-server: the stream is not there at first (every publish is refused), then it is made.
    The service holds its change events and retries until JetStream has them: the objects' versions
    are already behind it, so a change event given up would not come back before the next start."""
    import asyncio

    from app.jetstream import EventPublisher, connect, ensure_streams
    from app.topology_service import TopologyService
    from core.settings import isolated

    settings = isolated(embedded.settings(), "topology-held-publish")
    nc = await connect(settings.nats, name="topology-publish-test")
    try:
        js = nc.jetstream()
        state = TopologyState()
        when = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
        state.observe(observation(configmap(), "ADDED", when))
        edited = copy.deepcopy(configmap())
        edited["data"] = {key: "changed" for key in edited["data"]}
        edited["metadata"]["resourceVersion"] = "9999"
        _, edit = state.observe(observation(edited, "MODIFIED", when + timedelta(seconds=5)))
        assert edit is not None
        service = TopologyService(settings, runtime=None)  # type: ignore[arg-type]  # _publish reads neither
        publisher = EventPublisher(js, settings.nats, ack_timeout=0.5, attempts=1)
        held = asyncio.ensure_future(service._publish([edit], publisher))
        await asyncio.sleep(2.0)
        assert not held.done()  # refused, held, retried
        await ensure_streams(js, settings.nats)
        await asyncio.wait_for(held, timeout=30)
        info = await js.stream_info(settings.nats.stream)
        assert info.state.messages == 1
        message = await js.get_last_msg(settings.nats.stream, f"{settings.nats.subject_prefix}.>")
        assert message.headers["Nats-Msg-Id"] == edit.id
    finally:
        try:
            await nc.jetstream().delete_stream(settings.nats.stream)
            await nc.jetstream().delete_stream(settings.nats.deadletter_stream)
        except Exception:  # noqa: BLE001 - not made when the test failed before
            pass
        await nc.close()
