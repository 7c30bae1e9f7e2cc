"""The field layout of `kubectl describe` -> the fields of the Kubernetes object it shows.

Fed by: `collectors.kubedescribe`, with one block's lines. Feeds: `collectors.kubedescribe`,
which assembles the object. Here: the indentation tree of a block (`Key:  value` lines, their
continuation and child lines), and the builders of the parts describe prints the same way for
every kind: pod specs and pod templates (containers, env references, volumes), container
statuses, Conditions tables, workload replicas and selectors, node taints. A field that is
present but not what kubectl prints there raises Bad with its node (the caller names the line).
Pure: no clock.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from collectors.kubetables import cells, header_columns, rfc3339

KEY = re.compile(r"^( *)([^\s:][^:]*?):(?:[ \t]+(.*?))?[ \t]*$")
NONE = frozenset({"", "<none>", "<nil>", "<unset>"})


class Bad(ValueError):
    def __init__(self, node: Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node


class Node:
    __slots__ = ("line", "indent", "key", "value", "text", "children")

    def __init__(self, line: int, indent: int, key: str | None, value: str, text: str) -> None:
        self.line, self.indent, self.key, self.value, self.text = line, indent, key, value, text
        self.children: list[Node] = []

    def get(self, key: str) -> Node | None:
        return next((c for c in self.children if c.key == key), None)

    def val(self, key: str) -> str:
        found = self.get(key)
        return "" if found is None or found.value in NONE else found.value

    def flat(self) -> list[Node]:
        return [n for c in self.children for n in (c, *c.flat())]


def tree(lines: list[tuple[int, str]]) -> Node:
    root = Node(0, -1, None, "", "")
    stack = [root]
    for number, line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        match = KEY.match(line)
        key = match.group(2) if match and "  " not in match.group(2) and len(match.group(2)) <= 60 else None
        node = Node(number, indent, key, (match.group(3) or "") if key else "", line.strip())
        while stack[-1].indent >= indent:
            stack.pop()
        stack[-1].children.append(node)
        stack.append(node)
    return root


def children(node: Node | None) -> list[Node]:
    return [] if node is None or node.value not in NONE else node.children


def read_pairs(node: Node | None, sep: str) -> dict[str, str]:
    if node is None:
        return {}
    out: dict[str, str] = {}
    last = ""
    for text in [node.value, *(n.text for n in node.flat())]:
        if text in NONE:
            continue
        key, found, value = text.partition(sep)
        if found and key.strip():
            last = key.strip()
            out[last] = value.strip()
        elif last:  # an annotation value on several lines
            out[last] = f"{out[last]}\n{text}"
    return out


def read_selector(text: str) -> dict[str, str]:
    """`app=web,tier=fe` -> a map; set-based terms (`app in (a,b)`) are not followed."""
    pairs = (term.partition("=") for term in text.split(",") if term.strip() not in NONE)
    return {k.strip(): v.strip() for k, eq, v in pairs if eq and " " not in k.strip() and not k.endswith("!")}


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%a, %d %b %Y %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def time_of(node: Node | None) -> str:
    """The RFC3339 form of a time field; '' if absent; Bad if it is not a time."""
    if node is None or node.value in NONE:
        return ""
    moment = parse_time(node.value)
    if moment is None:
        raise Bad(node, f"{node.key}: not a time: {node.value!r}")
    return rfc3339(moment) if moment.year > 1 else ""


def int_of(node: Node) -> int:
    if not re.fullmatch(r"-?\d+", node.value):
        raise Bad(node, f"{node.key}: not a number: {node.value!r}")
    return int(node.value)


def read_conditions(node: Node | None) -> list[dict]:
    """The Conditions: table (`Type Status [Reason]`, a Node's with times and messages)."""
    rows = [n for n in children(node) if not re.fullmatch(r"-+(?:\s+-+)*", n.text)]
    if not rows:
        return []
    columns = header_columns(" " * rows[0].indent + rows[0].text)
    if not columns or columns[0][0] != "Type":
        raise Bad(rows[0], f"Conditions: table without a Type header: {rows[0].text!r}")
    out = []
    for row in rows[1:]:
        found = cells(" " * row.indent + row.text, columns)
        if found is None or not found.get("Type") or not found.get("Status"):
            raise Bad(row, f"Conditions: row not aligned with its header: {row.text!r}")
        cond = {"type": found["Type"], "status": found["Status"]}
        for name, value in found.items():
            if name.startswith("Last") and value:
                moment = parse_time(value)
                if moment is None:
                    raise Bad(row, f"Conditions: {name} is not a time: {value!r}")
                if moment.year > 1:
                    cond[name[:1].lower() + name[1:]] = rfc3339(moment)
            elif name in ("Reason", "Message") and value:
                cond[name.lower()] = value
        out.append(cond)
    return out


# -- pods and pod templates ------------------------------------------------------------------

_FIELD_REF = re.compile(r".* \((\w+):([\w.\[\]'/-]+)\)")
_ENV_REF = re.compile(r"<set to the key '([^']*)' (in secret|of config map) '([^']*)'>")


def pod_spec(node: Node) -> dict:
    spec: dict = {}
    for field, key in (("initContainers", "Init Containers"), ("containers", "Containers")):
        if found := [_container(c) for c in children(node.get(key)) if c.key]:
            spec[field] = found
    if volumes := [_volume(v) for v in children(node.get("Volumes")) if v.key]:
        spec["volumes"] = volumes
    if account := node.val("Service Account"):
        spec["serviceAccountName"] = account
    if (priority := node.get("Priority")) is not None and priority.value not in NONE:
        spec["priority"] = int_of(priority)
    if selector := read_selector(node.val("Node-Selectors")):
        spec["nodeSelector"] = selector
    return spec


def _container(node: Node) -> dict:
    out: dict = {"name": node.key}
    if image := node.val("Image"):
        out["image"] = image
    for field in ("Command", "Args"):
        if (found := node.get(field)) is not None:
            out[field.lower()] = [n.text for n in found.flat()] or ([found.value] if found.value else [])
    resources = {field.lower(): {c.key: c.value for c in children(node.get(field)) if c.key}
                 for field in ("Limits", "Requests") if node.get(field) is not None}
    if resources:
        out["resources"] = resources
    env = []
    for var in children(node.get("Environment")):
        if not var.key:
            continue
        ref = _ENV_REF.search(var.value)
        field = _FIELD_REF.fullmatch(var.value)
        if ref:
            which = "secretKeyRef" if ref.group(2) == "in secret" else "configMapKeyRef"
            env.append({"name": var.key, "valueFrom": {which: {"name": ref.group(3), "key": ref.group(1)}}})
        elif field:  # `web-0 (v1:metadata.name)`: the value it had, then apiVersion:fieldPath
            env.append({"name": var.key, "valueFrom": {"fieldRef": {"apiVersion": field.group(1),
                                                                     "fieldPath": field.group(2)}}})
        else:
            env.append({"name": var.key, "value": var.value})
    if env:
        out["env"] = env
    env_from = []
    for source in children(node.get("Environment Variables from")):
        words = source.text.split()
        if len(words) >= 2 and words[1] in ("ConfigMap", "Secret"):
            env_from.append({f"{words[1][0].lower()}{words[1][1:]}Ref": {"name": words[0]}})
    if env_from:
        out["envFrom"] = env_from
    for field, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")):
        if probe := _probe(node.val(field)):
            out[key] = probe
    return out


_PROBE_URL = re.compile(r"^http-get (https?)://([^:/]*):([^/\s]+)(\S*)")
_PROBE_TIMES = re.compile(r"\b(delay|timeout|period)=(\d+)s\b|#(success|failure)=(\d+)")
_PROBE_FIELDS = {"delay": "initialDelaySeconds", "timeout": "timeoutSeconds", "period": "periodSeconds",
                 "success": "successThreshold", "failure": "failureThreshold"}


def _probe(text: str) -> dict:
    """`http-get http://:8080/readyz delay=5s timeout=1s period=10s #success=1 #failure=3` (or
    `exec [pg_isready -U app]`, `tcp-socket :5432`, `grpc <service>:50051`) as the API's probe."""
    if not text:
        return {}
    out: dict = {}
    if m := _PROBE_URL.match(text):
        port: int | str = int(m.group(3)) if m.group(3).isdigit() else m.group(3)
        out["httpGet"] = {"scheme": m.group(1).upper(), "port": port, "path": m.group(4) or "/",
                          **({"host": m.group(2)} if m.group(2) else {})}
    elif text.startswith("exec ["):
        command = text[len("exec ["):].split("] ", 1)[0].rstrip("]")
        out["exec"] = {"command": command.split()}
    elif text.startswith("tcp-socket "):
        port_text = text.split()[1].rsplit(":", 1)[-1]
        out["tcpSocket"] = {"port": int(port_text) if port_text.isdigit() else port_text}
    elif text.startswith("grpc "):
        port_text = text.split()[1].rsplit(":", 1)[-1]
        out["grpc"] = {"port": int(port_text) if port_text.isdigit() else port_text}
    for m in _PROBE_TIMES.finditer(text):
        name, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        out[_PROBE_FIELDS[name]] = int(value)
    return out


def container_status(node: Node) -> dict | None:
    if not node.key or not any(node.get(k) for k in ("State", "Ready", "Restart Count")):
        return None
    out: dict = {"name": node.key}
    for field, key in (("image", "Image"), ("imageID", "Image ID"), ("containerID", "Container ID")):
        if value := node.val(key):
            out[field] = value
    if ready := node.val("Ready"):
        out["ready"] = ready.lower() == "true"
    out["restartCount"] = int_of(node.get("Restart Count")) if node.get("Restart Count") else 0
    for field, key in (("state", "State"), ("lastState", "Last State")):
        if (found := node.get(key)) is not None and found.value not in NONE:
            out[field] = _state(found)
    return out


def _state(node: Node) -> dict:
    which = node.value.lower()
    if which not in ("waiting", "running", "terminated"):
        raise Bad(node, f"{node.key}: not a container state (Waiting, Running, Terminated): {node.value!r}")
    detail: dict = {}
    for field, key in (("reason", "Reason"), ("message", "Message"), ("signal", "Signal")):
        if value := node.val(key):
            detail[field] = int(value) if field == "signal" and value.isdigit() else value
    if (code := node.get("Exit Code")) is not None:
        detail["exitCode"] = int_of(code)
    for field, key in (("startedAt", "Started"), ("finishedAt", "Finished")):
        if moment := time_of(node.get(key)):
            detail[field] = moment
    if which == "terminated" and "exitCode" not in detail:
        raise Bad(node, f"{node.key}: Terminated without an Exit Code (cut?)")
    return {which: detail}


def _volume(node: Node) -> dict:
    out: dict = {"name": node.key}
    kind = node.val("Type").split(" ", 1)[0]
    if kind == "ConfigMap":
        out["configMap"] = {"name": node.val("Name")}
    elif kind == "Secret":
        out["secret"] = {"secretName": node.val("SecretName")}
    elif kind == "PersistentVolumeClaim":
        out["persistentVolumeClaim"] = {"claimName": node.val("ClaimName"),
                                        "readOnly": node.val("ReadOnly").lower() == "true"}
    elif kind == "Projected":
        sources = [{"configMap": {"name": c.value}} if c.key == "ConfigMapName" else {"secret": {"name": c.value}}
                   for c in node.children if c.key in ("ConfigMapName", "SecretName") and c.value not in NONE]
        out["projected"] = {"sources": sources}
    elif kind == "EmptyDir":
        out["emptyDir"] = {}
    elif kind == "HostPath":
        out["hostPath"] = {"path": node.val("Path")}
    return out


# -- workloads and nodes ---------------------------------------------------------------------


def workload_spec(root: Node) -> dict:
    spec: dict = {}
    replicas = re.search(r"(\d+) desired", root.val("Replicas"))
    if replicas:
        spec["replicas"] = int(replicas.group(1))
    if selector := read_selector(root.val("Selector")):
        spec["selector"] = {"matchLabels": selector}
    for field, key in (("Backoff Limit", "backoffLimit"), ("Active Deadline Seconds", "activeDeadlineSeconds"),
                       ("Completions", "completions"), ("Parallelism", "parallelism")):
        number = re.fullmatch(r"(\d+)s?", root.val(field).strip())
        if number:  # a Job's limits (`Active Deadline Seconds:  1800s`)
            spec[key] = int(number.group(1))
    template = root.get("Pod Template")
    if template is not None:
        body: dict = {}
        if labels := read_pairs(template.get("Labels"), "="):
            body["metadata"] = {"labels": labels}
        body["spec"] = pod_spec(template)
        spec["template"] = body
    return spec


def replica_status(text: str) -> dict:
    """`3 desired | 3 updated | 3 total | 2 available | 1 unavailable`, `3 current / 3 desired`."""
    out = {}
    for field, word in (("replicas", "total"), ("replicas", "current"), ("updatedReplicas", "updated"),
                        ("availableReplicas", "available"), ("unavailableReplicas", "unavailable")):
        if found := re.search(rf"(\d+) {word}\b", text):
            out[field] = int(found.group(1))
    return out


def node_spec(root: Node) -> dict:
    spec: dict = {}
    if root.val("Unschedulable").lower() == "true":
        spec["unschedulable"] = True
    taints = []
    taint_node = root.get("Taints")
    for text in [root.val("Taints"), *(n.text for n in (taint_node.children if taint_node else []))]:
        match = re.fullmatch(r"([^=:\s]+)(?:=([^:\s]*))?:(\w+)", text.strip())
        if match:
            taint = {"key": match.group(1), "effect": match.group(3)}
            if match.group(2):
                taint["value"] = match.group(2)
            taints.append(taint)
    if taints:
        spec["taints"] = taints
    if cidr := root.val("PodCIDR"):
        spec["podCIDR"] = cidr
    return spec
