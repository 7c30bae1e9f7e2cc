"""The real test cluster's exceptions: each message says what to do.

Raised by `build` (packages, source, compile) and `node` (prerequisites, a part that does not
come up); caught by the tests' fixture, which skips only on `MachineUnfit`.
"""

from __future__ import annotations


class RealClusterError(Exception):
    """Root of everything the real cluster raises."""


class MachineUnfit(RealClusterError):
    """The machine cannot run a cluster at all (no root, no cgroup memory controller)."""


class NotRootError(MachineUnfit):
    """Not running as root: apt-get, mounts, network namespaces and cgroups need it."""


class NoMemoryCgroup(MachineUnfit):
    """No cgroup v1 memory controller mounted: the kubelet (cgroupfs driver) needs it."""


class AptError(RealClusterError):
    """apt-get or dpkg-source failed."""


class CompileError(RealClusterError):
    """`make WHAT=...` in the Kubernetes tree failed."""


class MissingBinary(RealClusterError):
    """A binary the cluster runs is not installed or not built."""


class StartError(RealClusterError):
    """A cluster part exited or did not become ready in time; the message has its log tail."""
