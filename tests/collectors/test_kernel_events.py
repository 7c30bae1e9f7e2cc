"""The kernel collector's pure parts: the compile flags from tracefs formats, what a sample and a
per-destination count read as (records -> RawEvents -> UnifiedEvent layers), the counters' deltas and
which memory cgroup counted an OOM kill. No BPF here (tests/collectors/test_kernel_real.py has it)."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.enrich import enrich_event
from agents.normalize import normalize_event
from collectors.kernel import cflags, program_text
from collectors.kernelevents import (
    FLOW_KINDS,
    Counters,
    ExitRecord,
    OomRecord,
    Place,
    SignalRecord,
    activity_event,
    exit_event,
    flow_count,
    flow_event,
    oom_event,
    signal_event,
    text,
)
from collectors.memcg import grown, memory_hierarchy, oom_kills
from collectors.podresolve import Cgroup, PodRef
from core.kube.semantics import known_intents, semantic_table

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
CID = "c" * 64
IN_POD = Place(cgroup=Cgroup(path=f"/k8s.io/{CID}", container_id=CID),
               pod=PodRef(namespace="shop", name="web-0", uid="u-1", container="web"))


def test_optional_tracepoint_fields_are_compiled_in_only_where_tracefs_has_them() -> None:
    full = {"syscalls/sys_enter_exit_group": "field:int error_code", "oom/mark_victim": "field:unsigned long anon_rss",
            "tcp/tcp_receive_reset": "field:__u16 sport", "tcp/tcp_send_reset": "field:__u8 saddr[28];",
            "cgroup/cgroup_attach_task": "field:__data_loc char[] dst_path;"}
    assert cflags(full, (9, 15), 4) == [
        "-w", "-DSIGNAL_MASK=((1ULL << 9) | (1ULL << 15))", "-DMEMORY_ROOT=4", "-DHAVE_CGROUP_ATTACH",
        "-DHAVE_EXIT_GROUP", "-DHAVE_OOM_RSS", "-DHAVE_RECEIVE_RESET", "-DHAVE_SEND_RESET_SOCKADDR"]
    # an older kernel: mark_victim with the pid only, tcp_send_reset with ports, no syscall tracepoints
    old = {"oom/mark_victim": "field:int pid", "tcp/tcp_send_reset": "field:__u16 sport", "tcp/tcp_receive_reset": ""}
    assert cflags(old, (9,)) == ["-w", "-DSIGNAL_MASK=((1ULL << 9))", "-DMEMORY_ROOT=0"]
    assert memory_hierarchy("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t33\t1\nmemory\t4\t122\t1\n") == 4
    assert memory_hierarchy("memory\t0\t90\t1\n") == 0  # on the v2 unified hierarchy
    source = program_text()
    assert "TRACEPOINT_PROBE(oom, mark_victim)" in source and "TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)" in source
    assert source.index("BPF_ARRAY(counters") < source.index("BPF_HASH(flows")  # one unit, in order


def test_an_oom_kill_in_a_pod_reads_as_the_pods_oom_kill_with_the_victim_and_its_memory() -> None:
    record = OomRecord(ts_ns=5, pid=4242, comm="java", trigger_pid=4250, trigger_comm="java-worker",
                       total_vm_kb=3_000_000, anon_rss_kb=51_200, oom_score_adj=985, uid=1000)
    raw = oom_event(record, IN_POD, node="node-1", at=AT)
    m = raw.metadata
    assert (m["reason"], m["intent"], m["category"], m["severity"]) == ("OOMKill", "oom-kill", "resources", "error")
    assert (m["kind"], m["namespace"], m["name"], m["container_id"], m["kernel.container"]) == (
        "Pod", "shop", "web-0", CID, "web")
    assert m["message"] == ("java (pid 4242) killed by the OOM killer: anon-rss 50 MiB, total-vm 2930 MiB, "
                            "oom_score_adj 985; allocation by java-worker (pid 4250)")
    event = normalize_event(enrich_event(raw))
    assert (event.k8s.kind, event.k8s.name, event.semantic.intent) == ("Pod", "web-0", "oom-kill")
    assert (event.kernel.pid, event.kernel.comm, event.kernel.cgroup) == (4242, "java", f"/k8s.io/{CID}")
    assert event.kernel.detail["oom_score_adj"] == "985"
    assert oom_event(record, IN_POD, node="node-1", at=AT).id == raw.id  # the same sample, the same id


def test_exits_read_as_a_code_a_kill_with_its_sender_or_a_crash_and_a_node_process_is_about_the_node() -> None:
    coded = exit_event(ExitRecord(ts_ns=1, pid=7, comm="sh", code=3, sig=0, filename="/bin/sh"), None,
                       node="node-1", at=AT).metadata
    assert (coded["kernel.exit_code"], coded["intent"], coded["severity"], coded["kind"]) == (
        "3", "process-exit", "info", "Node")
    assert coded["message"] == "sh (pid 7, /bin/sh) exited with code 3" and "kernel.signal" not in coded
    killed = exit_event(ExitRecord(ts_ns=2, pid=8, comm="sleep", code=-1, sig=9, sender_pid=1, sender_comm="kubelet"),
                        IN_POD, node="node-1", at=AT).metadata
    assert (killed["kernel.signal"], killed["kernel.exit_code"], killed["kernel.sender_comm"]) == (
        "SIGKILL", "137", "kubelet")
    assert (killed["intent"], killed["severity"], killed["name"]) == ("process-killed", "warning", "web-0")
    assert killed["message"] == "sleep (pid 8) killed by SIGKILL from kubelet (pid 1)"
    crashed = exit_event(ExitRecord(ts_ns=3, pid=9, comm="app", code=-1, sig=11), None, node="n", at=AT).metadata
    assert (crashed["kernel.signal"], crashed["intent"], crashed["severity"]) == ("SIGSEGV", "process-crash", "error")


def test_a_signal_sent_is_about_its_target_naming_the_sender() -> None:
    record = SignalRecord(ts_ns=4, sender_pid=100, sender_comm="containerd-shim", target_pid=8, target_comm="nginx",
                          sig=15, code=0)
    m = signal_event(record, IN_POD, node="node-1", at=AT).metadata
    assert (m["reason"], m["pid"], m["kernel.signal"], m["kernel.sender_pid"], m["severity"]) == (
        "SignalSent", "8", "SIGTERM", "100", "info")
    assert m["message"] == "containerd-shim (pid 100) sent SIGTERM to nginx (pid 8)" and m["name"] == "web-0"
    kill = signal_event(SignalRecord(ts_ns=5, sender_pid=0, sender_comm="", target_pid=8, target_comm="nginx", sig=9,
                                     code=128), None, node="n", at=AT).metadata
    assert kill["severity"] == "warning" and kill["message"] == "the kernel sent SIGKILL to nginx (pid 8)"


def test_per_destination_tcp_counts_read_as_retransmits_resets_and_failed_connections() -> None:
    v4 = bytes([10, 0, 0, 7]) + bytes(12)
    retransmits = flow_count(kind=1, pid=300, comm=b"curl\0\0\0", family=2, addr=v4, port=443, count=12)
    assert (retransmits.kind, retransmits.dst, retransmits.comm) == ("retransmit", "10.0.0.7", "curl")
    m = flow_event(retransmits, IN_POD, node="node-1", at=AT, interval=1.0).metadata
    assert (m["reason"], m["intent"], m["net.dst"], m["net.port"], m["net.count"], m["metric.tcp.retransmits"]) == (
        "TCPRetransmit", "tcp-retransmit", "10.0.0.7", "443", "12", "12")
    assert m["message"] == "12 TCP retransmits to 10.0.0.7:443 in 1s, by curl (pid 300)" and m["name"] == "web-0"
    event = normalize_event(enrich_event(flow_event(retransmits, None, node="node-1", at=AT, interval=1.0)))
    assert (event.network.dst, event.network.port, event.network.protocol) == ("10.0.0.7", 443, "tcp")
    assert event.metrics == {"tcp.retransmits": 12.0} and event.k8s.kind == "Node"

    v6 = bytes.fromhex("fd000000000000000000000000000001")
    refused = flow_event(flow_count(kind=4, pid=0, comm=bytes(16), family=10, addr=v6, port=5432, count=3), None,
                         node="n", at=AT, interval=1.0).metadata
    assert (refused["reason"], refused["net.kind"], refused["net.dst"]) == ("TCPConnectFailed", "connect-refused",
                                                                            "fd00::1")
    assert refused["message"] == "3 TCP connections to [fd00::1]:5432 refused in 1s" and "pid" not in refused
    mapped = bytes.fromhex("00000000000000000000ffff0a000007")
    assert flow_count(kind=5, pid=1, comm=b"", family=10, addr=mapped, port=80, count=1).dst == "10.0.0.7"
    sent = flow_event(flow_count(kind=3, pid=0, comm=b"", family=2, addr=v4, port=8080, count=2,
                                 laddr=bytes([10, 244, 0, 9]) + bytes(12)), None, node="n", at=AT,
                      interval=2.0).metadata
    assert sent["message"] == "2 TCP resets sent to 10.0.0.7 from local port 8080 in 2s"
    assert sent["net.src"] == "10.244.0.9"  # the local address: a pod IP names the pod (PodResolver.pod_at)
    assert text(b"abc\0garbage") == "abc"


def test_the_vocabulary_lists_what_each_tcp_count_means_so_that_patterns_may_name_it() -> None:
    table = semantic_table().node_reasons
    v4 = bytes([10, 0, 0, 7]) + bytes(12)
    for kind in FLOW_KINDS:
        m = flow_event(flow_count(kind=kind, pid=0, comm=b"", family=2, addr=v4, port=80, count=1), None, node="n",
                       at=AT, interval=1.0).metadata
        assert (table[m["reason"]].intent, table[m["reason"]].category, table[m["reason"]].severity) == (
            m["intent"], m["category"], m["severity"]), m
        assert m["intent"] in known_intents()


def test_the_kernels_counts_become_a_debug_activity_sample_and_nothing_when_nothing_happened() -> None:
    before = Counters(execs=10, clean_exits=9, connects=4)
    now = Counters.from_values([1010, 909, 50, 0, 3, 1, 204, 20, 0, 0])
    delta = now.since(before)
    assert delta == Counters(execs=1000, clean_exits=900, reported_exits=50, signals=3, ooms=1, connects=200,
                             connect_failures=20)
    m = activity_event(delta, node="n", at=AT, interval=30.0, lost=2).metadata
    assert (m["metric.kernel.execs"], m["metric.kernel.exits_clean"], m["metric.kernel.lost"], m["severity"]) == (
        "1000", "900", "2", "debug")
    assert activity_event(Counters(), node="n", at=AT, interval=30.0, lost=0) is None


def test_the_memory_cgroup_whose_oom_kill_counter_rose_is_the_victims() -> None:
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3  # v1 memory.oom_control
    assert oom_kills("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n") == 2  # v2 memory.events
    assert oom_kills("") == 0
    before = {"/": 0, "/kubepods": 4, "/kubepods/burstable": 4, "/kubepods/burstable/podx/abc": 4, "/other": 1}
    after = {**before, "/kubepods": 5, "/kubepods/burstable": 5, "/kubepods/burstable/podx/abc": 5,
             "/new/one": 1}
    # v2 counts a kill in every ancestor too: the deepest ones are the victims'; a cgroup new since then counts
    assert grown(before, after) == ["/kubepods/burstable/podx/abc", "/new/one"]
    assert grown(before, before) == []
