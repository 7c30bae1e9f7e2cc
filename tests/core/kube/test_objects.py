"""The time of an object observation (core.kube.objects): what a deletion does to it, an Endpoints' change trigger."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import msgspec
import pytest

from core.events import publish_order, utc
from core.kube.objects import UnusableObject, raw_event_from_object

REQUESTED = utc(datetime(2026, 11, 20, 10, 0, 0))


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def running_pod() -> dict:
    """A pod as the API serves it, last written by the kubelet a day before it is deleted."""
    day_before = rfc3339(REQUESTED - timedelta(days=1))
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "uid-web-0", "resourceVersion": "100",
                     "creationTimestamp": day_before,
                     "managedFields": [{"manager": "kubelet", "operation": "Update", "time": day_before}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running", "startTime": day_before,
                   "containerStatuses": [{"name": "web", "restartCount": 0,
                                          "state": {"running": {"startedAt": day_before}}}]},
    }


def deletion_sequence() -> list[tuple[str, dict]]:
    """`kubectl delete pod web-0` (grace 30 s), the kubelet stopping the container 2 s later and
    deleting with grace 0, then the object gone: the watch's MODIFIED, MODIFIED, DELETED."""
    asked = copy.deepcopy(running_pod())
    asked["metadata"].update(resourceVersion="101", deletionTimestamp=rfc3339(REQUESTED + timedelta(seconds=30)),
                             deletionGracePeriodSeconds=30)
    stopped = copy.deepcopy(asked)
    stopped_at = rfc3339(REQUESTED + timedelta(seconds=2))
    stopped["metadata"]["resourceVersion"] = "102"
    stopped["metadata"]["managedFields"][0]["time"] = stopped_at
    stopped["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0, "finishedAt": stopped_at}}
    gone = copy.deepcopy(stopped)  # the grace period shortened to 0: the deadline moves back to the request
    gone["metadata"].update(resourceVersion="103", deletionTimestamp=rfc3339(REQUESTED), deletionGracePeriodSeconds=0)
    return [("MODIFIED", asked), ("MODIFIED", stopped), ("DELETED", gone)]


def test_a_deletion_deadline_is_not_the_time_of_the_observation() -> None:
    events = [raw_event_from_object(o, action=a, source="watch") for a, o in deletion_sequence()]
    # the request itself (deadline - grace), then what the kubelet wrote: never the deadline 30 s ahead
    assert [e.timestamp for e in events] == [REQUESTED, REQUESTED + timedelta(seconds=2),
                                             REQUESTED + timedelta(seconds=2)]
    assert max(e.timestamp for e in events) < REQUESTED + timedelta(seconds=30)
    # in event-time order (stable, as a recording is published) the deletion comes after what preceded it
    assert [e.metadata["resource_version"] for e in publish_order(events)] == ["101", "102", "103"]
    # the deadline stays in the payload as data
    assert msgspec.json.decode(events[0].data)["metadata"]["deletionTimestamp"] == "2026-11-20T10:00:30Z"


def test_a_deadline_without_its_grace_period_dates_nothing() -> None:
    pod = running_pod()
    pod["metadata"]["deletionTimestamp"] = rfc3339(REQUESTED + timedelta(seconds=30))
    event = raw_event_from_object(pod, action="MODIFIED", source="watch")
    assert event.timestamp == REQUESTED - timedelta(days=1)  # the newest time it carries otherwise


@pytest.mark.parametrize("grace", [-1, "30", 1.5, True])
def test_a_grace_period_that_is_not_seconds_is_named(grace: object) -> None:
    pod = running_pod()
    pod["metadata"].update(deletionTimestamp=rfc3339(REQUESTED), deletionGracePeriodSeconds=grace)
    with pytest.raises(UnusableObject, match="metadata.deletionGracePeriodSeconds"):
        raw_event_from_object(pod, action="MODIFIED", source="watch")


def test_a_watched_edit_of_an_object_without_times_of_its_own_is_placed_at_its_receipt() -> None:
    # a ConfigMap edited on a real 1.20 API server kept its creation time and managedFields' time (the
    # manager's set of fields did not change): every edit and its revert were dated at creation
    created = REQUESTED - timedelta(minutes=5)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"mode": "archive"},
          "metadata": {"name": "cfg", "namespace": "shop", "uid": "u1", "resourceVersion": "7",
                       "creationTimestamp": rfc3339(created),
                       "managedFields": [{"manager": "kubectl", "operation": "Update", "time": rfc3339(created)}]}}
    edit = raw_event_from_object(cm, action="MODIFIED", source="watch", observed_at=REQUESTED)
    assert (edit.timestamp, edit.metadata["time_source"]) == (REQUESTED, "observed")
    listed = raw_event_from_object(cm, action="SNAPSHOT", source="list")
    assert listed.timestamp == created and "time_source" not in listed.metadata
    assert listed.id == edit.id  # one state, one id, whatever its time and how it was read
    again = raw_event_from_object(cm, action="MODIFIED", source="watch", observed_at=REQUESTED + timedelta(seconds=9))
    assert again.id == edit.id
    # an object whose own times are newer than the receipt (a clock ahead) keeps them
    ahead = raw_event_from_object(cm, action="MODIFIED", source="watch", observed_at=created - timedelta(seconds=1))
    assert ahead.timestamp == created


def test_an_endpoints_change_is_dated_by_its_trigger_not_by_its_first_write() -> None:
    # on a real 1.20 API server a pod leaving `addresses` for `notReadyAddresses` 10 s after the Endpoints'
    # first write left managedFields' time at that write (the controller's set of fields, `f:subsets`, was the
    # same); the endpoints controller's annotation says when the pod's readiness changed
    written, lost = REQUESTED - timedelta(seconds=10), REQUESTED
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": "client", "namespace": "shop", "uid": "u2", "resourceVersion": "9",
                              "creationTimestamp": rfc3339(written),
                              "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": rfc3339(lost)},
                              "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                                 "time": rfc3339(written)}]},
                 "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.3", "targetRef": {"kind": "Pod", "name": "c-1"}}],
                              "ports": [{"port": 8080}]}]}
    assert raw_event_from_object(endpoints, action="MODIFIED", source="watch").timestamp == lost
    # an annotation is anyone's text: one that is not a time dates nothing
    endpoints["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] = "soon"
    assert raw_event_from_object(endpoints, action="MODIFIED", source="watch").timestamp == written
