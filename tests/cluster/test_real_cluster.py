"""The real single-node cluster does what a cluster does: controllers, scheduler, kubelet, runtime.

Each test drives it only through the Kubernetes API (the `kubernetes` client on the admin
kubeconfig) and waits on what the cluster reports: a Deployment's ReplicaSet and Running pods
(controller-manager + scheduler + kubelet + containerd + CNI), a Job to completion, a crashing
container into CrashLoopBackOff with BackOff events, a container over its memory limit
OOMKilled (exit 137). The last test stops the cluster and checks nothing of it is left.
One xdist worker runs them all, in order (one cluster for the module).
"""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest
from kubernetes.client import (
    AppsV1Api,
    BatchV1Api,
    CoreV1Api,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1Job,
    V1JobSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
)
from realcluster.images import BUSYBOX_IMAGE
from realcluster.node import RealCluster
from waiting import until_sync

# 1500 s: run outside `make test` on a fresh machine, the first test's setup includes the build
pytestmark = [pytest.mark.xdist_group("real-cluster"), pytest.mark.timeout(1500)]

MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")


def busybox_spec(command: list[str], *, restart: str = "Always", memory: str | None = None) -> V1PodSpec:
    resources = V1ResourceRequirements(limits={"memory": memory}, requests={"memory": memory}) if memory else None
    container = V1Container(
        name="main", image=BUSYBOX_IMAGE, image_pull_policy="Never", command=command, resources=resources
    )
    return V1PodSpec(containers=[container], restart_policy=restart, termination_grace_period_seconds=1)


def events_for(core: CoreV1Api, namespace: str, name: str) -> list[kubernetes.client.CoreV1Event]:
    return list(core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items)


def test_deployment_gets_a_replicaset_and_running_pods(
    api: kubernetes.client.ApiClient, namespace: str, real_cluster: RealCluster
) -> None:
    apps, core = AppsV1Api(api), CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        V1Deployment(
            metadata=V1ObjectMeta(name="web"),
            spec=V1DeploymentSpec(
                replicas=2,
                selector=V1LabelSelector(match_labels=labels),
                template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels=labels), spec=busybox_spec(["sleep", "3600"])),
            ),
        ),
    )

    def replica_sets() -> list[str]:
        items = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
        return [
            rs.metadata.name for rs in items if any(o.kind == "Deployment" for o in rs.metadata.owner_references or [])
        ]

    (replica_set,) = until_sync(replica_sets, timeout=60, what="the Deployment controller's ReplicaSet for web")

    def running() -> list[V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ready = [
            p for p in pods if p.status.phase == "Running" and all(c.ready for c in p.status.container_statuses or [])
        ]
        return ready if len(ready) == 2 else []

    pods = until_sync(running, timeout=120, what="two Running, ready pods of web", procs=real_cluster.processes)
    for pod in pods:
        assert pod.spec.node_name == real_cluster.node_name  # the scheduler bound it
        assert [o.name for o in pod.metadata.owner_references] == [replica_set]
        assert pod.status.pod_ip and pod.status.pod_ip.startswith(real_cluster.subnet.rsplit(".", 2)[0])
    until_sync(
        lambda: apps.read_namespaced_deployment(name="web", namespace=namespace).status.available_replicas == 2,
        timeout=30,
        what="the Deployment controller reporting web's 2 replicas available",
    )


def test_job_runs_to_completion(api: kubernetes.client.ApiClient, namespace: str, real_cluster: RealCluster) -> None:
    batch = BatchV1Api(api)
    template = V1PodTemplateSpec(spec=busybox_spec(["sh", "-c", "echo computed; sleep 1"], restart="Never"))
    batch.create_namespaced_job(
        namespace, V1Job(metadata=V1ObjectMeta(name="once"), spec=V1JobSpec(template=template, backoff_limit=0))
    )

    def complete() -> V1Job | None:
        job = batch.read_namespaced_job(name="once", namespace=namespace)
        done = any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])
        return job if done else None

    job = until_sync(complete, timeout=120, what="Job once Complete", procs=real_cluster.processes)
    assert job.status.succeeded == 1
    core = CoreV1Api(api)
    (pod,) = core.list_namespaced_pod(namespace, label_selector="job-name=once").items
    assert pod.status.phase == "Succeeded"
    # the apiserver reads the container's log from the kubelet (at the node's Hostname address, localhost)
    assert core.read_namespaced_pod_log(name=pod.metadata.name, namespace=namespace) == "computed\n"


def test_crashing_container_reaches_crashloopbackoff(
    api: kubernetes.client.ApiClient, namespace: str, real_cluster: RealCluster
) -> None:
    core = CoreV1Api(api)
    core.create_namespaced_pod(
        namespace, V1Pod(metadata=V1ObjectMeta(name="crasher"), spec=busybox_spec(["sh", "-c", "echo bye; exit 3"]))
    )

    def crashlooping() -> V1Pod | None:
        pod = core.read_namespaced_pod(name="crasher", namespace=namespace)
        statuses = pod.status.container_statuses or []
        waiting = [s for s in statuses if s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff"]
        return pod if waiting else None

    pod = until_sync(crashlooping, timeout=120, what="pod crasher in CrashLoopBackOff", procs=real_cluster.processes)
    (status,) = pod.status.container_statuses
    assert status.last_state.terminated.exit_code == 3
    assert status.restart_count >= 1
    backoff = until_sync(
        lambda: [e for e in events_for(core, namespace, "crasher") if e.reason == "BackOff"],
        timeout=60,
        what="a BackOff event for crasher",
    )
    assert backoff[0].type == "Warning" and backoff[0].source.component == "kubelet"


def test_container_over_its_memory_limit_is_oomkilled(
    api: kubernetes.client.ApiClient, namespace: str, real_cluster: RealCluster
) -> None:
    if not (MEMORY_CGROUP / "memory.oom_control").exists():
        pytest.skip(f"{MEMORY_CGROUP}/memory.oom_control is missing: the kernel has no cgroup v1 memory OOM control")
    core = CoreV1Api(api)
    # busybox `tail` keeps the last line in memory; /dev/zero has no newline, so it grows until killed
    core.create_namespaced_pod(
        namespace,
        V1Pod(
            metadata=V1ObjectMeta(name="hog"), spec=busybox_spec(["tail", "/dev/zero"], restart="Never", memory="32Mi")
        ),
    )

    def terminated() -> kubernetes.client.V1ContainerStateTerminated | None:
        pod = core.read_namespaced_pod(name="hog", namespace=namespace)
        statuses = pod.status.container_statuses or []
        return statuses[0].state.terminated if statuses and statuses[0].state.terminated else None

    state = until_sync(terminated, timeout=120, what="container of hog terminated", procs=real_cluster.processes)
    assert (state.reason, state.exit_code) == ("OOMKilled", 137)


def test_stop_leaves_nothing_behind(real_cluster: RealCluster) -> None:
    pids = [p.pid for p in real_cluster.processes]
    work_dir, bridge = real_cluster.work_dir, real_cluster.bridge
    assert len(pids) == 6 and work_dir.is_dir() and Path("/sys/class/net", bridge).exists()

    problems = real_cluster.stop()

    assert problems == []
    assert real_cluster.leftovers() == []
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(work_dir) not in mounts and "/var/lib/kubelet" not in mounts
    assert not work_dir.exists()
    assert not Path("/sys/class/net", bridge).exists()
