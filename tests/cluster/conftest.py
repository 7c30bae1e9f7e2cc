"""The real single-node cluster (tests/support/realcluster) for the tests in this folder.

`real_cluster` builds the binaries first when they are not cached (`make test` has done it
already: then it costs seconds), starts the cluster once for the module and stops it after.
A module may set `APISERVER_FLAGS` (a list of kube-apiserver flags) for its own cluster, and
`SERVICE_ACCOUNTS = True` for pods that get their service account's token (in-cluster clients).
It skips only when the machine cannot run a cluster at all (not root, no cgroup v1 memory
controller), with that reason; a build or start failure is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import kubernetes
import pytest
from realcluster import build
from realcluster.errors import MachineUnfit
from realcluster.host import check_host
from realcluster.node import RealCluster, check_machine

NAMESPACE = "tapio-real"  # the tests' namespace, made by `api`


@pytest.fixture(scope="module")
def real_cluster(request: pytest.FixtureRequest) -> Iterator[RealCluster]:
    logging.getLogger("realcluster").setLevel(logging.INFO)
    try:
        check_host()  # before a build that would be wasted
        bin_dir = build.build()
        check_machine(bin_dir)
    except MachineUnfit as e:
        pytest.skip(f"this machine cannot run the real cluster: {e}")
    flags = getattr(request.module, "APISERVER_FLAGS", ())
    service_accounts = getattr(request.module, "SERVICE_ACCOUNTS", False)
    cluster = RealCluster(bin_dir=bin_dir, apiserver_flags=flags, service_accounts=service_accounts).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def namespace(api: kubernetes.client.ApiClient) -> str:
    """The namespace the tests create their objects in (made by `api`)."""
    return NAMESPACE


@pytest.fixture(scope="module")
def api(real_cluster: RealCluster) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(str(real_cluster.kubeconfig))
    core = kubernetes.client.CoreV1Api(client)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE)))
    try:
        yield client
    finally:
        client.close()
