"""Which pod a process is in (`collectors.podresolve`): the cgroup path shapes of containerd, the
kubelet's cgroupfs and systemd drivers (v1 and v2), and the kubelet's pod list. Pure, but for one
test reading this process's own /proc."""

from __future__ import annotations

import json
import os

import msgspec
import pytest

from collectors.podresolve import Cgroup, PodIndex, PodRef, PodResolver, about, cgroup_at, parse_cgroup, pod_index

CID = "3f4e9a1c0b2d" + "a" * 52
UID = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f4a5b6"

CONTAINERD_V1 = f"""12:pids:/k8s.io/{CID}
11:memory:/k8s.io/{CID}
10:cpu,cpuacct:/k8s.io/{CID}
1:name=systemd:/k8s.io/{CID}
0::/
"""
CGROUPFS_V1 = f"""9:memory:/kubepods/burstable/pod{UID}/{CID}
8:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}
0::/
"""
SYSTEMD_V2 = (f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"
              f"cri-containerd-{CID}.scope\n")
GUARANTEED_V2 = f"0::/kubepods/pod{UID}/{CID}\n"
HOST_PROCESS = """11:memory:/system.slice/kubelet.service
1:name=systemd:/system.slice/kubelet.service
0::/system.slice/kubelet.service
"""


@pytest.mark.parametrize("text, uid", [(CONTAINERD_V1, ""), (CGROUPFS_V1, UID), (SYSTEMD_V2, UID),
                                       (GUARANTEED_V2, UID)],
                         ids=["containerd-k8s.io", "cgroupfs-burstable", "systemd-scope", "guaranteed-v2"])
def test_every_container_cgroup_shape_names_its_container_and_the_pod_uid_where_the_path_holds_it(
        text: str, uid: str) -> None:
    found = parse_cgroup(text)
    assert (found.container_id, found.pod_uid) == (CID, uid)
    assert found.path.endswith(CID) or found.path.endswith(f"{CID}.scope")


def test_a_process_in_no_container_is_about_the_node_with_its_memory_cgroup() -> None:
    assert parse_cgroup(HOST_PROCESS) == Cgroup(path="/system.slice/kubelet.service")
    assert parse_cgroup("") == Cgroup(path="")
    # an exiting process on a v1 hierarchy reads "/" everywhere: no container
    assert parse_cgroup("11:memory:/\n0::/\n") == Cgroup(path="/")
    assert cgroup_at(f"/kubepods/pod{UID}/{CID}") == Cgroup(path=f"/kubepods/pod{UID}/{CID}", container_id=CID,
                                                            pod_uid=UID)
    assert about(None) == {}


def test_this_process_reads_its_own_cgroup() -> None:
    found = PodResolver(None).cgroup_of(os.getpid())
    assert found is not None and found.path.startswith("/")
    assert PodResolver(None).cgroup_of(2**22 + 12345) is None  # above pid_max: never a process


PODLIST = {
    "kind": "PodList", "apiVersion": "v1", "metadata": {},
    "items": [
        {"metadata": {"name": "web-0", "namespace": "shop", "uid": UID},
         "spec": {"containers": [{"name": "web"}]},
         "status": {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}, {"ip": "fd00::7"}],
                    "initContainerStatuses": [{"name": "init", "containerID": "containerd://" + "b" * 64}],
                    "containerStatuses": [{"name": "web", "containerID": f"containerd://{CID}", "restartCount": 2,
                                           "state": {"running": {}}}]}},
        {"metadata": {"name": "pending", "namespace": "shop", "uid": "0b2c3d4e-5f60-4718-9a0b-c1d2e3f4a5b6"},
         "status": {"phase": "Pending", "containerStatuses": [{"name": "app", "containerID": ""}]}},
        {"metadata": {"name": "proxy", "namespace": "kube-system", "uid": "2b2c3d4e-5f60-4718-9a0b-c1d2e3f4a5b6"},
         "spec": {"hostNetwork": True}, "status": {"podIP": "192.168.1.10", "podIPs": [{"ip": "192.168.1.10"}]}},
    ],
}


def test_the_kubelets_pod_list_finds_a_pod_by_container_id_or_by_pod_uid() -> None:
    index = pod_index(json.dumps(PODLIST).encode())
    web = PodRef(namespace="shop", name="web-0", uid=UID, container="web")
    assert index.find(parse_cgroup(CONTAINERD_V1)) == web
    assert index.find(Cgroup(path="/x", container_id="b" * 64)).container == "init"
    # a container the list does not have yet (just started), in a pod it has: the pod, by uid
    assert index.find(Cgroup(path="/x", container_id="c" * 64, pod_uid=UID)) == PodRef("shop", "web-0", UID)
    assert index.find(Cgroup(path="/x", container_id="c" * 64)) is None
    assert about(web) == {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": UID}
    # a socket's local address: the pod with that IP, either family; a hostNetwork pod's IP is the node's
    assert index.by_ip["10.244.0.7"] == index.by_ip["fd00::7"] == PodRef("shop", "web-0", UID)
    assert "192.168.1.10" not in index.by_ip
    with pytest.raises(msgspec.DecodeError):
        pod_index(b"<html>not a pod list</html>")
    # a kubelet that runs no pod yet (an agent started with the node) lists none: not an error
    assert pod_index(b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":null}') == PodIndex()


async def test_without_a_kubelet_a_container_is_about_the_node_and_a_dead_kubelet_is_said_once(
        caplog: pytest.LogCaptureFixture) -> None:
    assert await PodResolver(None).pod_of(parse_cgroup(CONTAINERD_V1)) is None
    resolver = PodResolver("http://127.0.0.1:9/pods", timeout=1.0)  # discard port: nothing listens
    try:
        for _ in range(2):
            resolver._fetched = float("-inf")
            assert await resolver.pod_of(parse_cgroup(CONTAINERD_V1)) is None
    finally:
        await resolver.close()
    warnings = [r for r in caplog.records if "cannot read the kubelet's pods" in r.getMessage()]
    assert len(warnings) == 1 and "readOnlyPort" in warnings[0].getMessage()
