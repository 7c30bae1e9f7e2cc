"""What a journal entry says about the node: unit failures and restarts, kernel OOM kills and hung tasks,
the kubelet's and the container runtime's errors that matter; everything else is routine.

Fed by: `collectors.journald` (journal entries as `journalctl -o json` prints them, decoded into
`JournalEntry`). Feeds: the journald collector, which turns each `Finding` into a node event and counts
the routine entries it does not forward.

Entries are judged by who wrote them (`SYSLOG_IDENTIFIER`: `systemd` for unit state, `kernel`, `kubelet`,
`containerd`, `crio`, `dockerd`) and their text, as systemd 252, Linux 6.x, kubelet 1.20 (klog, with
and without structured `pod="ns/name"`) and containerd 1.6 (logrus `level=error msg=...`) print them.
A kernel OOM kill takes its cgroup (hence the container id) from the `oom-kill:` line the kernel prints
just before the `Killed process` line; `Classifier` keeps the last few of those. journald's own notes
that it dropped entries (`Suppressed N messages`, `Missed N kernel messages`) are counted as lost.
Pure.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from collectors.cnierrors import failure_in_text

#: who writes what the classifier reads (journalctl matches on these, so the rest never leaves the journal)
IDENTIFIERS = ("systemd", "kernel", "kubelet", "containerd", "crio", "dockerd", "systemd-journald")
RUNTIMES = frozenset({"containerd", "crio", "dockerd"})


class JournalEntry(msgspec.Struct, kw_only=True):
    """The fields of a journal entry the classifier reads (journalctl's JSON field names)."""

    cursor: str = msgspec.field(name="__CURSOR")
    realtime_us: str = msgspec.field(name="__REALTIME_TIMESTAMP", default="0")
    # MESSAGE is a string, an array of bytes when it is not UTF-8, or null when larger than journalctl prints
    message: str | list[int] | None = msgspec.field(name="MESSAGE", default=None)
    identifier: str = msgspec.field(name="SYSLOG_IDENTIFIER", default="")
    unit: str = msgspec.field(name="UNIT", default="")
    priority: str = msgspec.field(name="PRIORITY", default="6")
    pid: str = msgspec.field(name="_PID", default="")

    @property
    def text(self) -> str:
        if isinstance(self.message, list):
            return bytes(b & 0xFF for b in self.message).decode("utf-8", "replace")
        return self.message or ""

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(int(self.realtime_us or 0) / 1e6, tz=UTC)


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """What one entry means, in the node event contract's terms (`collectors.node.node_event`)."""

    reason: str
    message: str
    intent: str
    category: str
    severity: str
    about: dict[str, str] = {}
    facts: dict[str, str] = {}


# -- systemd (PID 1) -----------------------------------------------------------------------------------
_UNIT_FAILED = re.compile(r"^(?P<unit>[\w@.\\:-]+): Failed with result '(?P<result>[^']+)'")
_UNIT_RESTART = re.compile(r"^(?P<unit>[\w@.\\:-]+): Scheduled restart job, restart counter is at (?P<n>\d+)")
_UNIT_EXIT = re.compile(r"^(?P<unit>[\w@.\\:-]+): Main process exited, code=(?P<code>\w+), "
                        r"status=(?P<status>\d+)(?:/(?P<name>\w+))?")
# -- kernel --------------------------------------------------------------------------------------------
_OOM_CONTEXT = re.compile(r"oom-kill:.*?task_memcg=(?P<memcg>[^,\s]*).*?,task=(?P<comm>[^,]*),pid=(?P<pid>\d+)")
_OOM_KILLED = re.compile(r"(?P<memcg>Memory cgroup )?[Oo]ut of memory: Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)")
_HUNG = re.compile(r"task (?P<comm>.+):(?P<pid>\d+) blocked for more than (?P<secs>\d+) seconds")
_CONTAINER_ID = re.compile(r"(?:^|[/-])(?P<id>[0-9a-f]{64})(?:\.scope)?$")
# -- journald's own losses -----------------------------------------------------------------------------
_SUPPRESSED = re.compile(r"^Suppressed (?P<n>\d+) messages from|^Missed (?P<k>\d+) kernel messages")
# -- kubelet (klog) and the runtimes (logrus) ----------------------------------------------------------
_KLOG = re.compile(r"^(?P<level>[IWEF])\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [\w.-]+:\d+\] ")
_LOGRUS_ERROR = re.compile(r'\blevel=(?:error|fatal)\b')
_POD_STRUCTURED = re.compile(r'\bpods?="\[?(?P<ns>[a-z0-9][-a-z0-9]*)/(?P<name>[a-z0-9][-a-z0-9.]*)')
_POD_KLOG = re.compile(r'(?P<name>[a-z0-9][-a-z0-9.]*)_(?P<ns>[a-z0-9][-a-z0-9]*)\((?P<uid>[0-9a-f-]{36})\)')
_POD_SANDBOX = re.compile(r"PodSandboxMetadata\{Name:(?P<name>[^,]+),Uid:(?P<uid>[^,]+),Namespace:(?P<ns>[^,]+)")
_IMAGE = re.compile(r'\bimage=\\?"(?P<image>[^"\\]+)|(?:PullImage|[Ff]ailed to pull (?:and unpack )?image|Pull image) '
                    r'\\*"(?P<quoted>[^"\\]+)')
_RECLAIM = re.compile(r"eviction manager: (?:attempting to reclaim|must evict pod\(s\) to reclaim) "
                      r"(?P<resource>[\w.]+)")
_EVICTED = re.compile(r"eviction manager: pod (?P<pod>\S+) is evicted successfully")
_SANDBOX = re.compile(r"failed to create pod sandbox|Failed to create sandbox for pod|CreatePodSandbox.* failed|"
                      r"RunPodSandbox for .* failed", re.IGNORECASE)
_PULL = re.compile(r"Failed to pull image|PullImage .*failed|ErrImagePull|failed to pull and unpack image",
                   re.IGNORECASE)


def _pod(text: str) -> dict[str, str]:
    for pattern in (_POD_STRUCTURED, _POD_SANDBOX, _POD_KLOG):
        found = pattern.search(text)
        if found is not None:
            groups = found.groupdict()
            return {"kind": "Pod", "namespace": groups["ns"], "name": groups["name"], "uid": groups.get("uid") or ""}
    return {}


def _container_id(memcg: str) -> str:
    found = _CONTAINER_ID.search(memcg)
    return found["id"] if found else ""


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Classifier:
    """Judges journal entries in order; keeps the last few kernel `oom-kill:` lines to give an OOM
    kill its cgroup, and counts what journald itself says it dropped (`dropped`)."""

    def __init__(self, *, remember: int = 64) -> None:
        self.dropped = 0
        self._oom_memcg: OrderedDict[str, str] = OrderedDict()  # pid -> task_memcg
        self._remember = remember
        self._by_identifier: dict[str, Callable[[JournalEntry, str], Finding | None]] = {
            "systemd": self._systemd, "kernel": self._kernel, "kubelet": self._kubelet,
            "systemd-journald": self._journald}

    def classify(self, entry: JournalEntry) -> Finding | None:
        """What `entry` means, or None when it is routine."""
        judge = self._by_identifier.get(entry.identifier)
        if judge is None and entry.identifier in RUNTIMES:
            judge = self._runtime
        return judge(entry, entry.text) if judge is not None else None

    # -- systemd ---------------------------------------------------------------------------------------
    def _systemd(self, entry: JournalEntry, text: str) -> Finding | None:
        if found := _UNIT_FAILED.match(text):
            unit = entry.unit or found["unit"]
            return Finding(reason="UnitFailed", message=_one_line(text), intent="unit-failure",
                           category="infrastructure", severity="error",
                           facts={"unit": unit, "unit.result": found["result"]})
        if found := _UNIT_RESTART.match(text):
            unit = entry.unit or found["unit"]
            return Finding(reason="UnitRestart", message=_one_line(text), intent="unit-restart",
                           category="infrastructure", severity="warning",
                           facts={"unit": unit, "metric.unit.restarts": found["n"]})
        if (found := _UNIT_EXIT.match(text)) and not (found["code"] == "exited" and found["status"] == "0"):
            unit = entry.unit or found["unit"]
            facts = {"unit": unit, "unit.exit_code": found["code"]}
            if found["code"] == "exited":
                facts["kernel.exit_code"] = found["status"]
            else:
                facts["kernel.signal"] = f"SIG{found['name']}" if found["name"] else found["status"]
            return Finding(reason="UnitProcessExit", message=_one_line(text), intent="process-exit",
                           category="infrastructure", severity="warning", facts=facts)
        return None

    # -- kernel ----------------------------------------------------------------------------------------
    def _kernel(self, entry: JournalEntry, text: str) -> Finding | None:
        if found := _OOM_CONTEXT.search(text):
            self._oom_memcg[found["pid"]] = found["memcg"]
            while len(self._oom_memcg) > self._remember:
                self._oom_memcg.popitem(last=False)
            return None
        if found := _OOM_KILLED.search(text):
            memcg = self._oom_memcg.pop(found["pid"], "")
            facts = {"pid": found["pid"], "kernel.comm": found["comm"],
                     "kernel.oom_scope": "cgroup" if found["memcg"] or (memcg and memcg != "/") else "system"}
            if memcg:
                facts["kernel.cgroup"] = memcg
                if container := _container_id(memcg):
                    facts["container_id"] = container
            return Finding(reason="OOMKill", message=_one_line(text), intent="oom-kill", category="resources",
                           severity="error", facts=facts)
        if found := _HUNG.search(text):
            return Finding(reason="HungTask", message=_one_line(text), intent="hung-task", category="infrastructure",
                           severity="warning", facts={"pid": found["pid"], "kernel.comm": found["comm"],
                                                      "kernel.blocked_seconds": found["secs"]})
        return None

    # -- kubelet ---------------------------------------------------------------------------------------
    def _kubelet(self, entry: JournalEntry, text: str) -> Finding | None:
        header = _KLOG.match(text)
        body = text[header.end():] if header else text
        level = header["level"] if header else ("E" if entry.priority in ("0", "1", "2", "3") else "I")
        if "PLEG is not healthy" in body:
            return Finding(reason="PLEGNotHealthy", message=_one_line(body), intent="node-not-ready",
                           category="infrastructure", severity="error")
        if found := _RECLAIM.search(body):
            return Finding(reason="EvictionThresholdMet", message=_one_line(body), intent="resource-pressure",
                           category="resources", severity="warning", facts={"eviction.resource": found["resource"]})
        if found := _EVICTED.search(body):
            return Finding(reason="Evicted", message=_one_line(body), intent="eviction", category="resources",
                           severity="error", about=_pod(found["pod"]) or _pod(body))
        if "System OOM encountered" in body:
            return Finding(reason="SystemOOM", message=_one_line(body), intent="oom-kill", category="resources",
                           severity="error")
        if "NetworkPluginNotReady" in body or "network plugin is not ready" in body:
            return Finding(reason="NetworkPluginNotReady", message=_one_line(body), intent="network-failure",
                           category="network", severity="error")
        if level in ("E", "F", "W") and "&Container{" not in body:
            # the kubelet logs one failure several times: the runtime call without the pod (remote_image.go,
            # remote_runtime.go), the container spec dumped whole (kuberuntime_manager.go), then "Error
            # syncing pod" naming it: only a line that names the pod is a finding
            finding = _runtime_error(body)
            return finding if finding is not None and finding.about else None
        return None

    # -- containerd, cri-o, dockerd --------------------------------------------------------------------
    def _runtime(self, entry: JournalEntry, text: str) -> Finding | None:
        if _LOGRUS_ERROR.search(text) or entry.priority in ("0", "1", "2", "3"):
            return _runtime_error(text)
        return None

    # -- journald's own losses -------------------------------------------------------------------------
    def _journald(self, entry: JournalEntry, text: str) -> Finding | None:
        if found := _SUPPRESSED.match(text):
            self.dropped += int(found["n"] or found["k"])
        return None


def _runtime_error(text: str) -> Finding | None:
    """An error line of the kubelet or a runtime that matters: a CNI failure, a pod sandbox that could
    not be made, an image that could not be pulled. Other errors are routine."""
    about = _pod(text)
    cni = failure_in_text(text)
    if cni is not None:
        facts = {k: v for k, v in (("net.cni_plugin", cni.plugin), ("net.cni_network", cni.network),
                                   ("net.ipam_range", cni.range)) if v}
        intent = "ip-exhaustion" if cni.reason == "CNIIPAMExhausted" else "network-failure"
        return Finding(reason=cni.reason, message=_one_line(text), intent=intent, category="network",
                       severity=cni.severity, about=about, facts=facts)
    if _SANDBOX.search(text):
        return Finding(reason="FailedCreatePodSandBox", message=_one_line(text), intent="network-failure",
                       category="network", severity="warning", about=about)
    if _PULL.search(text):
        image = _IMAGE.search(text)
        return Finding(reason="ErrImagePull", message=_one_line(text), intent="image-pull-failure",
                       category="deployment", severity="warning", about=about,
                       facts={"image": image["image"] or image["quoted"]} if image else {})
    return None
