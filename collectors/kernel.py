"""The kernel collector: eBPF programs on tracepoints (BCC), their samples and counts as RawEvents.

Fed by: the kernel, through the programs in `bpf/` (`process_lifecycle.c`: exec, exit code or fatal
signal, SIGKILL/SIGTERM by whom, OOM victims; `tcp_failures.c`: TCP connect failures, retransmits
and resets counted per process, remote address and service port), compiled and attached by BCC
(Debian `python3-bpfcc`) against kernel headers; `/proc/<pid>/cgroup` and the kubelet's pods
(`collectors.podresolve`) for the pod of each process. Feeds: the agent's `emit`, batches of
`kernel` RawEvents (`collectors.kernelevents`) every `interval` seconds.

Tracepoints only (kprobes and fentry may be absent, as on this VM), and only tracepoint fields and
BPF helpers are read, never kernel structs: the headers need not match the running kernel, and
BCC builds each tracepoint's argument struct from tracefs's format. Optional tracepoint fields
(`tcp_send_reset`'s sockaddrs, `mark_victim`'s memory) are compiled in only where tracefs has them.

Filtered in the kernel: clean exits and execs are only counted (a `ProcessActivity` sample every
`summary_every` seconds), threads are not reported, signals outside `signals` are dropped; TCP
trouble arrives as counts per interval, never one sample per packet. Lost: perf-buffer samples
the kernel dropped plus counts that found their map full (`lost()`).

Where a process is: the program keeps each process's memory cgroup (learnt from cgroup moves,
handed on at fork, seeded from /proc at load) and puts it in the exit and OOM samples, because an
exiting process shows `/` in /proc on a v1 hierarchy; else /proc, the last scan of it, or the memory
cgroup whose OOM-kill counter rose (`collectors.memcg`). The pod comes from the kubelet.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import os
import platform
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from collectors.kernelevents import (
    Counters,
    ExitRecord,
    FlowCount,
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
from collectors.memcg import OomCounters, memory_hierarchy
from collectors.node import Emit, SourceUnavailable
from collectors.podresolve import PodResolver, cgroup_at
from core.events import RawEvent

log = logging.getLogger(__name__)

TRACEFS = Path("/sys/kernel/tracing")
HEADER_CACHE = Path.home() / ".cache" / "tapio" / "kernel-headers"
PROGRAMS = ("process_lifecycle.c", "tcp_failures.c")  # in `bpf/`, compiled as one unit in this order
REQUIRED = ("sched/sched_process_exec", "sched/sched_process_exit", "sched/sched_process_fork",
            "signal/signal_generate", "signal/signal_deliver", "oom/mark_victim", "sock/inet_sock_set_state",
            "tcp/tcp_retransmit_skb")


def cflags(formats: dict[str, str], signals: tuple[int, ...], memory_root: int = 0) -> list[str]:
    """The compile flags for the tracepoints this kernel has: `formats` maps `group/name` to its
    tracefs format text ("" or absent when missing); `memory_root` is the memory controller's
    hierarchy id (`memcg.memory_hierarchy`). Pure."""
    mask = " | ".join(f"(1ULL << {int(s)})" for s in signals) or "0"
    flags = ["-w", f"-DSIGNAL_MASK=({mask})", f"-DMEMORY_ROOT={int(memory_root)}"]
    if "dst_path" in formats.get("cgroup/cgroup_attach_task", ""):
        flags.append("-DHAVE_CGROUP_ATTACH")
    if formats.get("syscalls/sys_enter_exit_group"):
        flags.append("-DHAVE_EXIT_GROUP")
    if "anon_rss" in formats.get("oom/mark_victim", ""):
        flags.append("-DHAVE_OOM_RSS")
    if formats.get("tcp/tcp_receive_reset"):
        flags.append("-DHAVE_RECEIVE_RESET")
    if "saddr[28]" in formats.get("tcp/tcp_send_reset", ""):
        flags.append("-DHAVE_SEND_RESET_SOCKADDR")
    return flags


def program_text() -> str:
    return "\n".join(resources.files("bpf").joinpath(name).read_text() for name in PROGRAMS)


def kernel_source(configured: Path | None = None) -> Path | None:
    """The kernel header tree BCC compiles against: `configured`, else `BCC_KERNEL_SOURCE`, else None
    when `/lib/modules/<release>/build` exists (BCC finds it), else the newest unpacked tree in
    `~/.cache/tapio/kernel-headers/` (tests/support/nodesources/kernel.py). Raises SourceUnavailable."""
    for candidate in (configured, os.environ.get("BCC_KERNEL_SOURCE")):
        if candidate:
            if not (Path(candidate) / "include").is_dir():
                raise SourceUnavailable(f"kernel: {candidate} holds no kernel headers (no include/)")
            return Path(candidate)
    if Path(f"/lib/modules/{platform.release()}/build/include").is_dir():
        return None
    trees = sorted(HEADER_CACHE.glob("*/include/generated/autoconf.h"))
    if trees:
        return trees[-1].parents[2]
    raise SourceUnavailable(
        f"kernel: no kernel headers for BCC (no /lib/modules/{platform.release()}/build, no BCC_KERNEL_SOURCE, nothing "
        f"in {HEADER_CACHE}): install the linux-headers package of this kernel, or unpack Debian's linux-headers + "
        "linux-kbuild (python -m nodesources.install) and set BCC_KERNEL_SOURCE")


_COMPILER_LIBS = ("libLLVM", "libclang-cpp", "libclang")
MADV_PAGEOUT = 21  # Linux 5.4+


def release_compiler_memory() -> int:
    """After the one compile: give the kernel back the pages of LLVM and clang that BCC mapped into
    this process (~70 MiB of code, not used again: maps and perf buffers go through libbcc alone) with
    madvise(MADV_PAGEOUT), and the compiler's freed heap with malloc_trim. Returns the bytes advised;
    0 where the kernel or libc cannot (the agent then just holds more)."""
    libc = ctypes.CDLL(None, use_errno=True)
    advised = 0
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return 0
    for line in maps:
        fields = line.split()
        if len(fields) < 6 or not any(name in fields[5] for name in _COMPILER_LIBS):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_PAGEOUT) == 0:
            advised += end - start
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    return advised


class KernelCollector:
    """`NodeCollector` "kernel". `resolver` finds pods (default: the kubelet's read-only port);
    `signals` are the ones reported when sent (SIGKILL, SIGTERM); `interval` is how often counts and
    samples are turned into a batch, `summary_every` how often the exec/exit counts are, `scan_every`
    how often the containers of all processes are read again from /proc (`PodResolver.scan`: a fallback
    for a process the program's cgroup map has evicted), `pod_wait` how long a sample from a container the
    kubelet does not list yet waits for it."""

    name = "kernel"

    def __init__(self, node: str, *, resolver: PodResolver | None = None, interval: float = 1.0,
                 summary_every: float = 30.0, signals: tuple[int, ...] = (signal.SIGKILL, signal.SIGTERM),
                 max_batch: int = 500, headers: Path | None = None, tracefs: Path = TRACEFS,
                 perf_pages: int = 64, scan_every: float = 60.0, pod_wait: float = 5.0) -> None:
        self.node = node
        self.resolver = resolver if resolver is not None else PodResolver()
        self.interval, self.summary_every, self.signals = interval, summary_every, tuple(signals)
        self.max_batch, self.headers, self.tracefs, self.perf_pages = max_batch, headers, tracefs, perf_pages
        self.scan_every, self.pod_wait = scan_every, pod_wait
        self._pending: list[tuple[Any, Place | None]] = []
        self._perf_lost = 0
        self._map_full = 0
        self._samples: collections.deque[tuple[Any, Place | None]] = collections.deque()
        self.loaded = threading.Event()  # set once the programs are attached (tests wait on it)
        self.oom_counters = OomCounters()
        self._bpf: Any = None

    def lost(self) -> int:
        return self._perf_lost + self._map_full

    def program_stats(self) -> dict[str, tuple[int, int]]:
        """Per attached program: (runs, nanoseconds in it), the kernel-side cost the traced processes
        pay, from the program's fdinfo; zeros unless `sysctl kernel.bpf_stats_enabled=1`."""
        out: dict[str, tuple[int, int]] = {}
        for name, function in (getattr(self._bpf, "funcs", None) or {}).items():
            try:
                info = dict(line.split(":\t", 1) for line in
                            Path(f"/proc/self/fdinfo/{function.fd}").read_text().splitlines() if ":\t" in line)
            except OSError:
                continue
            key = name.decode() if isinstance(name, bytes) else str(name)
            out[key] = (int(info.get("run_cnt", "0")), int(info.get("run_time_ns", "0")))
        return out

    # -- check -------------------------------------------------------------------------------------

    def check(self) -> None:
        """Root, tracefs (mounted here when it is not), the tracepoints, BCC and headers. Raises
        SourceUnavailable naming the missing one."""
        if os.geteuid() != 0:
            raise SourceUnavailable("kernel: loading eBPF needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN): run the "
                                    "agent privileged")
        self._mount_tracefs()
        missing = [tp for tp in REQUIRED if not (self.tracefs / "events" / tp / "format").exists()]
        if missing:
            raise SourceUnavailable(f"kernel: this kernel has no tracepoint {', '.join(missing)} (CONFIG_TRACEPOINTS, "
                                    "CONFIG_FTRACE); the kernel collector cannot run here")
        try:
            import bcc  # noqa: F401  (Debian's python3-bpfcc, on the path by a .pth)
        except ImportError as e:
            raise SourceUnavailable(f"kernel: BCC's Python module is not importable ({e}): apt-get install "
                                    "python3-bpfcc and put it on this interpreter's path (python -m "
                                    "nodesources.install writes a .pth)") from e
        kernel_source(self.headers)

    def _mount_tracefs(self) -> None:
        if (self.tracefs / "events").is_dir():
            return
        done = subprocess.run(["mount", "-t", "tracefs", "nodev", str(self.tracefs)], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0 or not (self.tracefs / "events").is_dir():
            raise SourceUnavailable(f"kernel: tracefs is not mounted at {self.tracefs} and mounting it failed "
                                    f"({done.stderr.strip()}): mount -t tracefs nodev {self.tracefs}, or mount the "
                                    "host's /sys/kernel into the agent")

    def _formats(self) -> dict[str, str]:
        out = {}
        for tp in (*REQUIRED, "syscalls/sys_enter_exit_group", "tcp/tcp_receive_reset", "tcp/tcp_send_reset",
                   "cgroup/cgroup_attach_task"):
            try:
                out[tp] = (self.tracefs / "events" / tp / "format").read_text()
            except OSError:
                out[tp] = ""
        return out

    # -- load and read -----------------------------------------------------------------------------

    def _load(self) -> Any:
        from bcc import BPF  # imported here: check() says what to do when it is missing

        source = kernel_source(self.headers)
        if source is not None:
            os.environ["BCC_KERNEL_SOURCE"] = str(source)
        started = time.monotonic()
        try:
            memory_root = memory_hierarchy(Path("/proc/cgroups").read_text())
        except OSError:
            memory_root = 0
        bpf = BPF(text=program_text().encode(), cflags=cflags(self._formats(), self.signals, memory_root))
        self._seed(bpf)
        for table, parse in ((b"exits", self._on_exit), (b"signals", self._on_signal), (b"ooms", self._on_oom)):
            # the callback reaches its table through `bpf`, not by holding it: BCC's cleanup() frees a perf
            # buffer when the table's last reference goes, and a table its own callback holds lingers
            bpf[table].open_perf_buffer(self._reader(bpf, table, parse), page_cnt=self.perf_pages,
                                        lost_cb=self._on_lost)
        log.info("kernel: %d tracepoints attached in %.2fs (headers %s); %d MiB of compiler mappings paged out",
                 bpf.num_open_tracepoints(), time.monotonic() - started, source or "of the running kernel",
                 release_compiler_memory() // 2**20)
        return bpf

    def _seed(self, bpf: Any) -> None:
        """Tell the program the cgroup of every process in a container now (it learns later ones from
        cgroup moves and forks)."""
        table = bpf[b"proc_cgroup"]
        self.resolver.scan()
        for pid, cgroup in self.resolver.seen().items():
            leaf = table.Leaf()
            leaf.path = cgroup.path.encode()[:255]
            table[table.Key(pid)] = leaf

    def _reader(self, bpf: Any, table: bytes, parse: Any) -> Any:
        """The perf-buffer callback of `table`: a sample that fails to parse is counted lost and logged
        (ctypes would only print it), the others go on."""
        def read(_cpu: int, data: Any, _size: int) -> None:
            try:
                parse(bpf[table].event(data))
            except Exception:
                self._perf_lost += 1
                log.exception("kernel: a %s sample could not be read; counted lost, reading on", table.decode())
        return read

    def _on_lost(self, count: int) -> None:
        self._perf_lost += count

    # The callbacks run on the polling thread, right after the kernel wrote the sample: the process's
    # cgroup is read there, before its parent reaps it and /proc/<pid> is gone.
    def _place(self, pid: int) -> Place | None:
        cgroup = self.resolver.cgroup_of(pid) if pid else None
        return Place(cgroup=cgroup) if cgroup else None

    def _tracked(self, pid: int, cgroup: str) -> Place | None:
        """The cgroup the program tracked for the process, else what /proc (or the last scan) says."""
        return Place(cgroup=cgroup_at(cgroup)) if cgroup else self._place(pid)

    def _on_exit(self, e: Any) -> None:
        record = ExitRecord(ts_ns=e.ts, pid=e.pid, comm=text(e.comm), code=e.code, sig=e.sig, sender_pid=e.sender_pid,
                            sender_comm=text(e.sender_comm), filename=text(e.filename), cgroup=text(e.cgroup))
        self._samples.append((record, self._tracked(record.pid, record.cgroup)))

    def _on_signal(self, e: Any) -> None:
        record = SignalRecord(ts_ns=e.ts, sender_pid=e.sender_pid, sender_comm=text(e.sender_comm),
                              target_pid=e.target_pid, target_comm=text(e.target_comm), sig=e.sig, code=e.code)
        self._samples.append((record, self._place(record.target_pid)))

    def _on_oom(self, e: Any) -> None:
        record = OomRecord(ts_ns=e.ts, pid=e.pid, comm=text(e.comm), trigger_pid=e.trigger_pid,
                           trigger_comm=text(e.trigger_comm), total_vm_kb=e.total_vm_kb, anon_rss_kb=e.anon_rss_kb,
                           file_rss_kb=e.file_rss_kb, shmem_rss_kb=e.shmem_rss_kb, oom_score_adj=e.oom_score_adj,
                           uid=e.uid, cgroup=text(e.cgroup))
        # untracked, the victim is already exiting (v1 shows it at "/"): _collect asks the OOM counters
        self._samples.append((record, self._tracked(record.pid, record.cgroup)))

    @staticmethod
    def _flows(bpf: Any) -> list[FlowCount]:
        table = bpf[b"flows"]
        try:
            items = list(table.items_lookup_and_delete_batch())
        except Exception:  # BCC's only type; kernels before 5.6 have no batch ops: read, then delete what was read
            items = [(k, v) for k, v in table.items()]
            for k, _ in items:
                table.pop(k, None)
        return [flow_count(kind=k.kind, pid=k.pid, comm=bytes(v.comm), family=k.family, addr=bytes(k.addr),
                           port=k.port, count=v.count, laddr=bytes(k.laddr), first_ns=v.first_ns) for k, v in items]

    @staticmethod
    def _counters(bpf: Any) -> Counters:
        table = bpf[b"counters"]
        return Counters.from_values([table[ctypes.c_int(i)].value for i in range(len(Counters.__struct_fields__))])

    # -- run ---------------------------------------------------------------------------------------

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.oom_counters.start)
        bpf = self._bpf = await asyncio.to_thread(self._load)
        halt = threading.Event()

        def poll() -> None:
            while not halt.is_set():
                bpf.perf_buffer_poll(timeout=200)

        poller = threading.Thread(target=poll, name="kernel-perf-poll", daemon=True)
        poller.start()
        self.loaded.set()
        before = self._counters(bpf)
        summarized = scanned = time.monotonic()  # _load scanned /proc to seed the program
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                except TimeoutError:
                    pass
                if time.monotonic() - scanned >= self.scan_every:
                    await asyncio.to_thread(self.resolver.scan)
                    scanned = time.monotonic()
                events = await self._collect(bpf, final=stop.is_set())
                now = self._counters(bpf)
                self._map_full = now.map_full
                if time.monotonic() - summarized >= self.summary_every or stop.is_set():
                    elapsed = time.monotonic() - summarized
                    summary = activity_event(now.since(before), node=self.node, at=datetime.now(UTC),
                                             interval=elapsed, lost=self.lost())
                    if summary is not None:
                        events.append(summary)
                    before, summarized = now, time.monotonic()
                for start in range(0, len(events), self.max_batch):
                    await emit(events[start:start + self.max_batch])
        finally:
            halt.set()
            await asyncio.to_thread(poller.join)
            self._bpf = None
            bpf.cleanup()
            await self.resolver.close()

    async def _collect(self, bpf: Any, *, final: bool = False) -> list[RawEvent]:
        """The samples since the last call and the interval's TCP counts, as RawEvents with their pods.
        A sample from a container the kubelet does not list yet (it lists a container once its status
        is updated, ~1 s after start: a container that dies at start is read before that) waits up to
        `pod_wait` seconds for it (not on the `final` call), then goes out naming the container and the Node."""
        mono_now, wall_now = time.clock_gettime_ns(time.CLOCK_MONOTONIC), datetime.now(UTC)

        def at(ts_ns: int) -> datetime:
            return wall_now - timedelta(microseconds=(mono_now - ts_ns) / 1000)

        new = [self._samples.popleft() for _ in range(len(self._samples))]
        oom_cgroups = (await asyncio.to_thread(self.oom_counters.victims_since)
                       if any(isinstance(r, OomRecord) for r, _ in new) else [])
        for record, place in new:
            if isinstance(record, OomRecord) and not record.cgroup and len(oom_cgroups) == 1:
                place = Place(cgroup=cgroup_at(oom_cgroups[0]))  # the one memory cgroup that counted a kill
            self._pending.append((record, place))
        events: list[RawEvent] = []
        waiting: list[tuple[Any, Place | None]] = []
        for record, place in self._pending:
            if place is not None and place.cgroup is not None:
                place = Place(cgroup=place.cgroup, pod=await self.resolver.pod_of(place.cgroup))
                if (not final and place.pod is None and place.cgroup.container_id and self.resolver.kubelet_url
                        and (mono_now - record.ts_ns) / 1e9 < self.pod_wait):
                    waiting.append((record, place))
                    continue
            if isinstance(record, ExitRecord):
                events.append(exit_event(record, place, node=self.node, at=at(record.ts_ns)))
            elif isinstance(record, SignalRecord):
                events.append(signal_event(record, place, node=self.node, at=at(record.ts_ns)))
            else:
                events.append(oom_event(record, place, node=self.node, at=at(record.ts_ns)))
        self._pending = waiting
        for flow in self._flows(bpf):
            place = self._place(flow.pid)
            if place is not None and place.cgroup is not None:
                place = Place(cgroup=place.cgroup, pod=await self.resolver.pod_of(place.cgroup))
            elif flow.src:  # an accepted socket (or a reset with no socket): the pod whose IP it is
                place = Place(pod=await self.resolver.pod_at(flow.src))
            when = at(flow.first_ns) if flow.first_ns else wall_now
            events.append(flow_event(flow, place, node=self.node, at=when, interval=self.interval))
        return events
