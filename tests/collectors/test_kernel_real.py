"""The kernel collector against the real kernel: its BPF programs loaded once for the module, then a
real memcg OOM kill, exits with a code and by SIGKILL, a SIGTERM handled cleanly, a connect to a
closed port, and TCP retransmits and a connect timeout forced by an nftables drop rule in a private
network namespace. Each test looks only at its own processes and ports (other machines on this host
make kernel events too).

Needs root (BPF, a v1 memory cgroup, netns, nftables) and tracefs: skips naming which is absent. BCC
and the kernel headers come from `python -m nodesources.install` (tests/support/nodesources/kernel.py);
when they are missing the test fails saying so, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernelrun import Running

from collectors.kernel import REQUIRED, TRACEFS, KernelCollector
from collectors.node import SourceUnavailable
from collectors.podresolve import PodResolver

pytestmark = pytest.mark.xdist_group("kernel-bpf")

MEMCG = Path("/sys/fs/cgroup/memory")


@pytest.fixture(scope="module")
def kernel() -> Iterator[Running]:
    if os.geteuid() != 0:
        pytest.skip("loading eBPF programs needs root")
    collector = KernelCollector("node-test", resolver=PodResolver(None), interval=0.5, summary_every=1.0)
    try:
        collector.check()
    except SourceUnavailable as e:
        if not (TRACEFS / "events").is_dir() or any(not (TRACEFS / "events" / tp).is_dir() for tp in REQUIRED):
            pytest.skip(f"this kernel has no tracefs or the tracepoints: {e}")
        raise
    running = Running(collector).start()
    try:
        yield running
    finally:
        running.stop()
    assert running.error is None, running.error


def test_exit_codes_and_a_sigkill_are_seen_with_the_code_signal_and_sender_and_clean_ends_are_only_counted(
        kernel: Running) -> None:
    me = str(os.getpid())
    failing = subprocess.Popen(["sh", "-c", "exit 7"])
    failing.wait()
    victim = subprocess.Popen(["sleep", "60"])
    time.sleep(0.05)  # let it exec sleep (the exit then names it), not required by what is checked
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    handler = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                                "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert handler.stdout.readline().strip() == "ready"
        handler.send_signal(signal.SIGTERM)
        assert handler.wait(10) == 0
    finally:
        handler.kill()
    clean = subprocess.Popen(["true"])
    clean.wait()
    marker = subprocess.Popen(["sh", "-c", "exit 9"])
    marker.wait()

    (code,) = kernel.wait_for("exit 7", lambda m: m["reason"] == "ProcessExit" and m.get("pid") == str(failing.pid))
    assert (code["kernel.exit_code"], code["intent"], code["severity"]) == ("7", "process-exit", "info")
    assert code["kind"] == "Node" and "kernel.signal" not in code and code["kernel.comm"] == "sh"

    (killed,) = kernel.wait_for("the SIGKILL exit", lambda m: m["reason"] == "ProcessExit"
                                and m.get("pid") == str(victim.pid))
    assert (killed["kernel.signal"], killed["kernel.exit_code"], killed["kernel.sender_pid"]) == ("SIGKILL", "137", me)
    assert killed["intent"] == "process-killed" and killed["kernel.filename"].endswith("sleep")
    (sent,) = kernel.wait_for("the SIGKILL sent", lambda m: m["reason"] == "SignalSent"
                              and m.get("pid") == str(victim.pid))
    assert (sent["kernel.signal"], sent["kernel.sender_pid"], sent["severity"]) == ("SIGKILL", me, "warning")

    (term,) = kernel.wait_for("the SIGTERM sent", lambda m: m["reason"] == "SignalSent"
                              and m.get("pid") == str(handler.pid))
    assert (term["kernel.signal"], term["kernel.sender_pid"], term["severity"]) == ("SIGTERM", me, "info")
    kernel.wait_for("the marker exit 9", lambda m: m["reason"] == "ProcessExit" and m.get("pid") == str(marker.pid))
    time.sleep(1.0)  # one more interval: a wrongly reported clean exit would have arrived by now
    assert not kernel.seen(lambda m: m["reason"] == "ProcessExit" and m.get("pid") in (str(handler.pid),
                                                                                         str(clean.pid)))
    summary = kernel.wait_for("a ProcessActivity sample", lambda m: m["reason"] == "ProcessActivity")
    assert sum(int(m["metric.kernel.exits_clean"]) for m in summary) >= 2  # `true` and the handled SIGTERM


@pytest.fixture
def memcg() -> Iterator[Path]:
    if not (MEMCG / "memory.limit_in_bytes").exists():
        pytest.skip(f"no cgroup v1 memory controller at {MEMCG}")
    group = MEMCG / f"tapio-oom-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(50 * 2**20))
        yield group
    finally:
        deadline = time.monotonic() + 10
        while group.exists():
            try:
                group.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_a_real_memcg_oom_kill_is_an_oomkill_of_the_victim_with_its_cgroup(kernel: Running, memcg: Path) -> None:
    hog = subprocess.Popen([sys.executable, "-c", "import os, sys\n"
                            f"open({str(memcg / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))\n"
                            "chunks = []\nwhile True:\n    chunks.append(bytearray(4 << 20))\n"])
    try:
        assert hog.wait(30) == -signal.SIGKILL
    finally:
        hog.kill()
        hog.wait()
    (oom,) = kernel.wait_for("the OOMKill", lambda m: m["reason"] == "OOMKill" and m.get("pid") == str(hog.pid))
    assert (oom["intent"], oom["category"], oom["severity"]) == ("oom-kill", "resources", "error")
    assert oom["kernel.cgroup"] == f"/{memcg.name}", oom
    assert oom["kernel.comm"].startswith("python") and int(oom["kernel.anon_rss_kb"]) > 10_000
    assert oom["message"].startswith(f"{oom['kernel.comm']} (pid {hog.pid}) killed by the OOM killer")
    (died,) = kernel.wait_for("its exit", lambda m: m["reason"] == "ProcessExit" and m.get("pid") == str(hog.pid))
    assert (died["kernel.signal"], died["kernel.exit_code"]) == ("SIGKILL", "137")
    assert died["kernel.cgroup"] == f"/{memcg.name}"  # tracked in the kernel: /proc shows an exiting process at /


def test_a_process_forked_in_a_cgroup_exits_with_that_cgroup(kernel: Running, memcg: Path) -> None:
    """The program learns the cgroup from the move (cgroup_attach_task) and hands it on at fork."""
    shell = subprocess.Popen(["sh", "-c", f"echo $$ > {memcg / 'cgroup.procs'}; sh -c 'exit 5'; exit 6"])
    assert shell.wait(10) == 6
    exits = kernel.wait_for("both exits", lambda m: m["reason"] == "ProcessExit" and m.get("kernel.comm") == "sh"
                            and m.get("kernel.cgroup") == f"/{memcg.name}", count=2)
    assert sorted(m["kernel.exit_code"] for m in exits) == ["5", "6"]
    assert {m["pid"] for m in exits} >= {str(shell.pid)}


def test_a_connect_to_a_closed_port_is_a_refused_connection_and_a_reset_sent(kernel: Running) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    before = time.time()
    for _ in range(3):
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
    after = time.time()
    failed = kernel.wait_for("TCPConnectFailed", lambda m: m["reason"] == "TCPConnectFailed"
                             and m.get("net.port") == str(port))
    assert sum(int(m["net.count"]) for m in failed) == 3
    assert {(m["net.kind"], m["net.dst"], m["net.src"], m.get("pid"), m["intent"]) for m in failed} == {
        ("connect-refused", "127.0.0.1", "127.0.0.1", str(os.getpid()), "connection-failure")}
    # stamped when the refusals happened (the interval's first), not when the collector drained the counts
    stamped = [e.timestamp.timestamp() for e in kernel.events if any(e.metadata is m for m in failed)]
    assert all(before - 0.01 <= t <= after + 0.01 for t in stamped), (before, stamped, after)
    resets = kernel.wait_for("the resets sent", lambda m: m["reason"] == "TCPReset" and m.get("net.port") == str(port))
    assert {m["net.kind"] for m in resets} == {"reset-sent"} and sum(int(m["net.count"]) for m in resets) == 3


@pytest.fixture
def netns() -> Iterator[str]:
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: python -m nodesources.install (iproute2, nftables)")
    name = f"tapio-k-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
conn, _ = server.accept()
while conn.recv(65536):
    pass
"""

CLIENT = """
import socket, sys, time
port = int(sys.argv[1])
client = socket.create_connection(("127.0.0.1", port))
print("connected", flush=True)
sys.stdin.readline()  # the drop rule is in
for _ in range(20):
    client.send(b"x" * 1000)
    time.sleep(0.05)
timeout = socket.socket()
timeout.settimeout(1.0)
try:
    timeout.connect(("127.0.0.1", port + 1))
except OSError:
    pass
timeout.close()
print("done", flush=True)
time.sleep(60)
"""


def test_retransmits_and_a_connect_timeout_forced_by_a_drop_rule_in_a_netns(kernel: Running, netns: str) -> None:
    port = 24_000 + os.getpid() % 10_000
    run = ["ip", "netns", "exec", netns, sys.executable, "-c"]
    server = subprocess.Popen([*run, SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout.readline().strip() == "listening"
        client = subprocess.Popen([*run, CLIENT, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "connected"
        # on input: a drop on output fails the send locally, the data stays unsent and nothing is retransmitted
        rules = (f"table inet tapio {{ chain in {{ type filter hook input priority 0; "
                 f"tcp dport {{ {port}, {port + 1} }} drop; }}; }}")
        subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=rules, text=True, check=True)
        client.stdin.write("go\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "done"
        retransmits = kernel.wait_for("TCPRetransmit", lambda m: m["reason"] == "TCPRetransmit"
                                      and m.get("net.port") == str(port) and m.get("pid") == str(client.pid))
        assert retransmits[0]["net.dst"] == "127.0.0.1" and retransmits[0]["severity"] == "warning"
        assert sum(int(m["net.count"]) for m in retransmits) >= 1
        (timeout,) = kernel.wait_for("the connect timeout", lambda m: m["reason"] == "TCPConnectFailed"
                                     and m.get("net.port") == str(port + 1))
        assert (timeout["net.kind"], timeout["pid"]) == ("connect-failed", str(client.pid))
    finally:
        for process in (client, server):
            if process is not None:
                process.kill()
                process.wait()
