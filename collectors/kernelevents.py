"""What the kernel programs report, as records, and the RawEvents a person reads from them.

Fed by: `collectors/kernel.py`, which copies each perf-buffer sample of the kernel programs
(`bpf/process_lifecycle.c`, `bpf/tcp_failures.c`) into a record (`ExitRecord`, `SignalRecord`,
`OomRecord`), drains the per-destination TCP counts (`FlowCount`) and the counters (`Counters`)
every interval, and finds where each process sits (`Place`: cgroup, container, pod).
Feeds: the agent's publisher, through `node_event` RawEvents of type `kernel`:
- `OOMKill` (oom-kill, resources, error): the OOM killer's victim, its memory and cgroup;
- `ProcessExit`: a process that exited with a non-zero code (process-exit, info) or was killed by a
  signal (process-killed, warning; a crash signal such as SIGSEGV: process-crash, error), with
  `kernel.exit_code` (the code, or 128 + the signal as a shell and the kubelet say it),
  `kernel.signal` and who sent it;
- `SignalSent` (signal-sent, lifecycle): SIGKILL/SIGTERM (the signals the program watches) by whom
  to whom;
- `TCPRetransmit`, `TCPReset`, `TCPConnectFailed` (network, warning): counts per owning process,
  remote address and service port over an interval, with `net.dst`, `net.port`, `net.count`, at the
  time of the interval's first one;
- `ProcessActivity` (debug): execs and exits counted in the kernel, as `metric.kernel.*` samples.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import signal
from datetime import datetime

import msgspec

from collectors.node import node_event
from collectors.podresolve import Cgroup, PodRef, about
from core.events import RawEvent

SOURCE = "kernel"
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
                           signal.SIGSYS, signal.SIGTRAP, signal.SIGQUIT})
# the `kind` of bpf/tcp_failures.c's flow_key
FLOW_KINDS = {1: "retransmit", 2: "reset-received", 3: "reset-sent", 4: "connect-refused", 5: "connect-failed"}
AF_INET, AF_INET6 = 2, 10


class ExitRecord(msgspec.Struct, frozen=True):
    ts_ns: int      # CLOCK_MONOTONIC, as bpf_ktime_get_ns
    pid: int
    comm: str
    code: int       # exit_group's code, -1 when the process ended by a signal first
    sig: int        # the fatal signal, 0 for none
    sender_pid: int = 0
    sender_comm: str = ""
    filename: str = ""  # what it exec'd, when the program saw the exec
    cgroup: str = ""    # its memory cgroup as the program tracked it, "" when not known


class SignalRecord(msgspec.Struct, frozen=True):
    ts_ns: int
    sender_pid: int
    sender_comm: str
    target_pid: int
    target_comm: str
    sig: int
    code: int       # si_code: 0 SI_USER (kill), 128 SI_KERNEL, -6 SI_TKILL...


class OomRecord(msgspec.Struct, frozen=True):
    ts_ns: int
    pid: int
    comm: str
    trigger_pid: int   # the process whose allocation ran the OOM killer
    trigger_comm: str
    total_vm_kb: int = 0
    anon_rss_kb: int = 0
    file_rss_kb: int = 0
    shmem_rss_kb: int = 0
    oom_score_adj: int = 0
    uid: int = 0
    cgroup: str = ""


class FlowCount(msgspec.Struct, frozen=True):
    """One in-kernel TCP count over an interval: `kind` (FLOW_KINDS), the owning process (pid 0 and
    comm "" when unknown), the remote address, the service port and the local address; `first_ns`
    when its first one happened (CLOCK_MONOTONIC, 0 when not known)."""
    kind: str
    pid: int
    comm: str
    dst: str
    port: int
    count: int
    src: str = ""
    first_ns: int = 0


class Counters(msgspec.Struct, frozen=True):
    """bpf/process_lifecycle.c's `counters`, in its enum's order; totals since the program loaded."""
    execs: int = 0
    clean_exits: int = 0
    reported_exits: int = 0
    map_full: int = 0
    signals: int = 0
    ooms: int = 0
    connects: int = 0
    connect_failures: int = 0

    def since(self, before: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(msgspec.structs.astuple(self), msgspec.structs.astuple(before),
                                                strict=True)))

    @classmethod
    def from_values(cls, values: list[int]) -> Counters:
        return cls(*values[:len(cls.__struct_fields__)])


class Place(msgspec.Struct, frozen=True):
    """Where a process sat when the event was read: its cgroup (None: gone) and its pod (None: the Node)."""
    cgroup: Cgroup | None = None
    pod: PodRef | None = None


def text(raw: bytes) -> str:
    """A C string from a fixed-size kernel buffer."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def address(family: int, raw: bytes) -> str:
    """The flow key's 16 address bytes as text ("" for a family other than IPv4/IPv6)."""
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == AF_INET6:
        ip = ipaddress.IPv6Address(raw[:16])
        return str(ip.ipv4_mapped or ip)
    return ""


def flow_count(*, kind: int, pid: int, comm: bytes, family: int, addr: bytes, port: int, count: int,
               laddr: bytes = b"", first_ns: int = 0) -> FlowCount:
    return FlowCount(kind=FLOW_KINDS.get(kind, f"kind-{kind}"), pid=pid, comm=text(comm),
                     dst=address(family, addr), port=port, count=count,
                     src=address(family, laddr) if laddr else "", first_ns=first_ns)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _place_facts(place: Place | None, pid: int) -> dict[str, str]:
    facts = {"pid": str(pid)} if pid else {}
    if place and place.cgroup:
        facts["kernel.cgroup"] = place.cgroup.path
        if place.cgroup.container_id:
            facts["container_id"] = place.cgroup.container_id
    if place and place.pod and place.pod.container:
        facts["kernel.container"] = place.pod.container
    return facts


def _about(place: Place | None) -> dict[str, str]:
    return about(place.pod if place else None)


def _who(comm: str, pid: int) -> str:
    return f"{comm or '?'} (pid {pid})" if pid else "the kernel"


def oom_event(record: OomRecord, place: Place | None, *, node: str, at: datetime) -> RawEvent:
    mib = record.anon_rss_kb / 1024
    message = (f"{_who(record.comm, record.pid)} killed by the OOM killer: anon-rss {mib:.0f} MiB, total-vm "
               f"{record.total_vm_kb / 1024:.0f} MiB, oom_score_adj {record.oom_score_adj}")
    if record.trigger_pid and record.trigger_pid != record.pid:
        message += f"; allocation by {_who(record.trigger_comm, record.trigger_pid)}"
    facts = {**_place_facts(place, record.pid), "kernel.comm": record.comm,
             "kernel.oom_score_adj": str(record.oom_score_adj), "kernel.anon_rss_kb": str(record.anon_rss_kb),
             "kernel.total_vm_kb": str(record.total_vm_kb), "kernel.file_rss_kb": str(record.file_rss_kb),
             "kernel.shmem_rss_kb": str(record.shmem_rss_kb), "kernel.uid": str(record.uid),
             "kernel.trigger_pid": str(record.trigger_pid), "kernel.trigger_comm": record.trigger_comm}
    return node_event(SOURCE, node=node, at=at, reason="OOMKill", message=message, intent="oom-kill",
                      category="resources", severity="error", about=_about(place), facts=facts,
                      key=f"oom:{record.pid}:{record.ts_ns}")


def exit_event(record: ExitRecord, place: Place | None, *, node: str, at: datetime) -> RawEvent:
    who = _who(record.comm, record.pid)
    if record.filename:
        who = f"{record.comm} (pid {record.pid}, {record.filename})"
    facts = {**_place_facts(place, record.pid), "kernel.comm": record.comm}
    if record.filename:
        facts["kernel.filename"] = record.filename
    if record.sig:
        name = signal_name(record.sig)
        facts.update({"kernel.signal": name, "kernel.signal_number": str(record.sig),
                      "kernel.exit_code": str(128 + record.sig)})
        message = f"{who} killed by {name}"
        if record.sender_pid:
            message += f" from {_who(record.sender_comm, record.sender_pid)}"
            facts.update({"kernel.sender_pid": str(record.sender_pid), "kernel.sender_comm": record.sender_comm})
        crash = record.sig in CRASH_SIGNALS
        intent, category, severity = (("process-crash", "availability", "error") if crash
                                      else ("process-killed", "lifecycle", "warning"))
    else:
        facts["kernel.exit_code"] = str(record.code)
        message = f"{who} exited with code {record.code}"
        intent, category, severity = "process-exit", "lifecycle", "info"
    return node_event(SOURCE, node=node, at=at, reason="ProcessExit", message=message, intent=intent,
                      category=category, severity=severity, about=_about(place), facts=facts,
                      key=f"exit:{record.pid}:{record.ts_ns}")


def signal_event(record: SignalRecord, place: Place | None, *, node: str, at: datetime) -> RawEvent:
    """About the target (its pod), saying who sent it."""
    name = signal_name(record.sig)
    sender, target = _who(record.sender_comm, record.sender_pid), _who(record.target_comm, record.target_pid)
    message = f"{sender} sent {name} to {target}"
    facts = {**_place_facts(place, record.target_pid), "kernel.comm": record.target_comm, "kernel.signal": name,
             "kernel.signal_number": str(record.sig), "kernel.signal_code": str(record.code),
             "kernel.sender_pid": str(record.sender_pid), "kernel.sender_comm": record.sender_comm}
    severity = "warning" if record.sig == signal.SIGKILL else "info"
    return node_event(SOURCE, node=node, at=at, reason="SignalSent", message=message, intent="signal-sent",
                      category="lifecycle", severity=severity, about=_about(place), facts=facts,
                      key=f"signal:{record.sender_pid}:{record.target_pid}:{record.sig}:{record.ts_ns}")


_FLOW_MEANING = {  # kind -> reason, intent, what the count is, the metric name
    "retransmit": ("TCPRetransmit", "tcp-retransmit", "TCP retransmits to {dst}", "tcp.retransmits"),
    "reset-received": ("TCPReset", "tcp-reset", "TCP resets received from {dst}", "tcp.resets_received"),
    "reset-sent": ("TCPReset", "tcp-reset", "TCP resets sent to {dst} from local port {port}", "tcp.resets_sent"),
    "connect-refused": ("TCPConnectFailed", "connection-failure", "TCP connections to {dst} refused",
                        "tcp.connects_refused"),
    "connect-failed": ("TCPConnectFailed", "connection-failure",
                       "TCP connections to {dst} failed (no answer or unreachable)", "tcp.connects_failed"),
}


def flow_event(flow: FlowCount, place: Place | None, *, node: str, at: datetime, interval: float) -> RawEvent:
    reason, intent, what, metric = _FLOW_MEANING.get(flow.kind, ("TCPTrouble", "tcp-trouble", "TCP {kind} {dst}",
                                                                 "tcp.trouble"))
    dst = f"[{flow.dst}]:{flow.port}" if ":" in flow.dst else f"{flow.dst}:{flow.port}"
    if flow.kind == "reset-sent":
        dst = flow.dst
    message = f"{flow.count} {what.format(dst=dst, port=flow.port, kind=flow.kind)} in {interval:g}s"
    if flow.pid:
        message += f", by {_who(flow.comm, flow.pid)}"
    facts = {**_place_facts(place, flow.pid), "net.protocol": "tcp", "net.dst": flow.dst, "net.port": str(flow.port),
             "net.count": str(flow.count), "net.kind": flow.kind, f"metric.{metric}": str(flow.count)}
    if flow.src:
        facts["net.src"] = flow.src
    if flow.comm:
        facts["kernel.comm"] = flow.comm
    return node_event(SOURCE, node=node, at=at, reason=reason, message=message, intent=intent, category="network",
                      severity="warning", about=_about(place), facts=facts)


def activity_event(delta: Counters, *, node: str, at: datetime, interval: float, lost: int) -> RawEvent | None:
    """The kernel's counts over an interval as metric samples, None when nothing happened."""
    if not any(msgspec.structs.astuple(delta)) and not lost:
        return None
    message = (f"{delta.execs} execs, {delta.clean_exits} clean exits, {delta.reported_exits} other exits, "
               f"{delta.connects} TCP connects ({delta.connect_failures} failed) in {interval:.0f}s")
    facts = {"metric.kernel.execs": str(delta.execs), "metric.kernel.exits_clean": str(delta.clean_exits),
             "metric.kernel.exits_reported": str(delta.reported_exits), "metric.kernel.signals": str(delta.signals),
             "metric.kernel.oom_kills": str(delta.ooms), "metric.tcp.connects": str(delta.connects),
             "metric.tcp.connect_failures": str(delta.connect_failures), "metric.kernel.lost": str(lost)}
    return node_event(SOURCE, node=node, at=at, reason="ProcessActivity", message=message, intent="process-activity",
                      category="lifecycle", severity="debug", facts=facts)
