"""The kubelet collector's real source: the kubelet of the real single-node cluster (`tests/support/realcluster`,
built from Debian's `kubernetes` source package by `realcluster.build`, which `make test` runs), on its
read-only port (`RealCluster.kubelet_read_only_url`). Nothing more to install; the recorded endpoints of
that kubelet the pure tests read are in `tests/collectors/data/kubelet-1.20/`.
"""

from __future__ import annotations

PACKAGES: tuple[str, ...] = ()  # the cluster's own packages are realcluster's (containerd, runc, etcd-server, ...)
