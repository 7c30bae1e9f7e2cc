"""Renderers that imitate what kubectl prints.

Everything here follows the Go sources it imitates:
- text/tabwriter (column blocks, cells terminated by tabs, the last cell of a line not aligned),
- k8s.io/apimachinery/pkg/util/duration HumanDuration / ShortHumanDuration,
- staging/src/k8s.io/kubectl/pkg/describe/describe.go (describePod, describeContainers,
  describeStatus, DescribeEvents, printLabelsMultiline, printPodTolerationsMultiline, ...),
- pkg/printers/internalversion/describe.go of kubectl 1.6 for the old layout,
- kubectl get events (server-side table: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE) and
  kubectl events (LAST SEEN, TYPE, REASON, OBJECT as Kind/name, MESSAGE).
"""
from __future__ import annotations

import datetime as dt
import json

import yaml

# ----------------------------------------------------------------------------- time

def parse_ts(s):
    if s is None:
        return None
    if isinstance(s, dt.datetime):
        return s
    s = s.replace("Z", "+00:00")
    return dt.datetime.fromisoformat(s)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc1123z(t, tz=dt.UTC) -> str:
    t = parse_ts(t).astimezone(tz)
    return t.strftime("%a, %d %b %Y %H:%M:%S ") + t.strftime("%z")


def human_duration(seconds: float) -> str:
    """apimachinery duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def short_human_duration(seconds: float) -> str:
    """apimachinery duration.ShortHumanDuration (kubectl <= 1.10 ages)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 86400 * 365:
        return f"{s // 86400}d"
    return f"{s // 86400 // 365}y"


def since(now, t, fn=human_duration):
    if t is None:
        return "<unknown>"
    return fn((parse_ts(now) - parse_ts(t)).total_seconds())


# ----------------------------------------------------------------------------- tabwriter

def go_tabwriter(text: str, minwidth=0, padding=2, padchar=" ") -> str:
    """Go text/tabwriter with flags 0 (cells are tab-terminated; the trailing cell of a
    line is not part of any column). Text is processed as one block until the end."""
    lines = text.split("\n")
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        lines = lines[:-1]
    cells = [ln.split("\t") for ln in lines]
    out = []

    def fmt(line0, line1, widths):
        column = len(widths)
        this = line0
        while this < line1:
            line = cells[this]
            if column >= len(line) - 1:
                this += 1
                continue
            # write lines line0..this
            write_lines(line0, this, widths)
            line0 = this
            width = minwidth
            while this < line1:
                line = cells[this]
                if column >= len(line) - 1:
                    break
                w = len(line[column]) + padding
                if w > width:
                    width = w
                this += 1
            fmt(line0, this, widths + [width])
            line0 = this
        write_lines(line0, line1, widths)

    def pad(c, w):
        if padchar == "\t":
            cellw = -(-w // 8) * 8
            n = cellw - len(c)
            return c + "\t" * (-(-n // 8))
        return c + padchar * (w - len(c))

    def write_lines(l0, l1, widths):
        for i in range(l0, l1):
            line = cells[i]
            parts = []
            for j, c in enumerate(line):
                if j < len(widths) and j < len(line) - 1:
                    parts.append(pad(c, widths[j]))
                else:
                    parts.append(c)
            out.append("".join(parts))

    fmt(0, len(cells), [])
    res = "\n".join(out)
    if trailing_newline:
        res += "\n"
    return res


def kubectl_table(rows) -> str:
    """printers.GetNewTabWriter: minwidth 6, padding 3 (RememberWidths does not matter for one flush)."""
    text = "".join("\t".join(r) + "\n" for r in rows)
    return go_tabwriter(text, minwidth=6, padding=3)


class Describe:
    """PrefixWriter over a tabwriter buffer; flush() imitates DescribeEvents' w.Flush()."""

    def __init__(self, padding=2, padchar=" "):
        self.chunks = []
        self.buf = []
        self.padding = padding
        self.padchar = padchar

    def w(self, level, s):
        self.buf.append("  " * level + s)

    def line(self, s):  # WriteLine
        self.buf.append(s + "\n")

    def flush(self):
        self.chunks.append(go_tabwriter("".join(self.buf), 0, self.padding, self.padchar))
        self.buf = []

    def text(self):
        self.flush()
        return "".join(self.chunks)


# ----------------------------------------------------------------------------- describe helpers

def labels_multiline(d: Describe, title, labels, initial=""):
    d.w(0, f"{initial}{title}:\t")
    if not labels:
        d.line("<none>")
        return
    for i, k in enumerate(sorted(labels)):
        if i:
            d.w(0, initial)
            d.w(0, "\t")
        d.w(0, f"{k}={labels[k]}\n")


def annotations_multiline(d: Describe, title, ann):
    d.w(0, f"{title}:\t")
    keys = sorted(k for k in (ann or {}) if k != "kubectl.kubernetes.io/last-applied-configuration")
    if not keys:
        d.line("<none>")
        return
    for i, k in enumerate(keys):
        if i:
            d.w(0, "\t")
        v = ann[k].rstrip("\n")
        if len(v) + len(k) + 2 > 140 or "\n" in v:
            d.w(0, f"{k}:\n")
            for s in v.split("\n"):
                d.w(0, "\t  " + (s[:138] + "..." if len(s) > 138 else s) + "\n")
        else:
            d.w(0, f"{k}: {v}\n")


def tolerations_multiline(d: Describe, title, tols, initial=""):
    d.w(0, f"{initial}{title}:\t")
    if not tols:
        d.line("<none>")
        return
    for i, t in enumerate(sorted(tols, key=lambda t: t.get("key", ""))):
        if i:
            d.w(0, initial)
            d.w(0, "\t")
        s = t.get("key", "")
        if t.get("value"):
            s += "=" + t["value"]
        if t.get("effect"):
            s += ":" + t["effect"]
        if t.get("operator") == "Exists" and not t.get("value"):
            s += " op=Exists" if (t.get("key") or t.get("effect")) else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            s += f" for {t['tolerationSeconds']}s"
        d.w(0, s + "\n")


def tolerations_multiline_16(d: Describe, title, tols):
    """kubectl 1.6: key=value:Operator:Effect for Ns."""
    d.w(0, f"{title}:\t")
    if not tols:
        d.line("<none>")
        return
    for i, t in enumerate(sorted(tols, key=lambda t: t.get("key", ""))):
        if i:
            d.w(0, "\t")
        s = t.get("key", "") + "=" + t.get("value", "")
        if t.get("operator"):
            s += ":" + t["operator"]
        if t.get("effect"):
            s += ":" + t["effect"]
        if t.get("tolerationSeconds") is not None:
            s += f" for {t['tolerationSeconds']}s"
        d.w(0, s + "\n")


def annotations_16(d: Describe, ann):
    d.w(0, "Annotations:\t")
    if not ann:
        d.line("<none>")
        return
    for i, k in enumerate(sorted(ann)):
        if i:
            d.w(0, "\t")
        line = f"{k}={ann[k]}"
        d.w(0, (line[:200] + "...\n") if len(line) > 200 else line + "\n")


def describe_probe(p):
    attrs = "delay=%ds timeout=%ds period=%ds #success=%d #failure=%d" % (
        p.get("initialDelaySeconds", 0), p.get("timeoutSeconds", 1), p.get("periodSeconds", 10),
        p.get("successThreshold", 1), p.get("failureThreshold", 3))
    if "exec" in p:
        return "exec [%s] %s" % (" ".join(p["exec"]["command"]), attrs)
    if "httpGet" in p:
        h = p["httpGet"]
        scheme = h.get("scheme", "HTTP").lower()
        return "http-get %s://%s:%s%s %s" % (scheme, h.get("host", ""), h["port"], h.get("path", ""), attrs)
    if "tcpSocket" in p:
        return "tcp-socket %s:%s %s" % (p["tcpSocket"].get("host", ""), p["tcpSocket"]["port"], attrs)
    return "unknown " + attrs


def describe_probe_16(p):
    s = describe_probe(p)
    if "tcpSocket" in p:
        s = s.replace("tcp-socket :", "tcp-socket :")
    return s


def res_sort(d):
    return sorted(d)


def container_ports(ports):
    out = []
    for p in ports or []:
        s = f"{p['containerPort']}/{p.get('protocol', 'TCP')}"
        if p.get("name"):
            s += f" ({p['name']})"
        out.append(s)
    return ", ".join(out)


def host_ports(ports):
    out = []
    for p in ports or []:
        s = f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}"
        if p.get("name"):
            s += f" ({p['name']})"
        out.append(s)
    return ", ".join(out)


def describe_state(d: Describe, name, st, tz=dt.UTC):
    if "running" in st:
        d.w(2, f"{name}:\tRunning\n")
        d.w(3, f"Started:\t{rfc1123z(st['running']['startedAt'], tz)}\n")
    elif "waiting" in st:
        d.w(2, f"{name}:\tWaiting\n")
        if st["waiting"].get("reason"):
            d.w(3, f"Reason:\t{st['waiting']['reason']}\n")
    elif "terminated" in st:
        t = st["terminated"]
        d.w(2, f"{name}:\tTerminated\n")
        if t.get("reason"):
            d.w(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            d.w(3, f"Message:\t{t['message']}\n")
        d.w(3, f"Exit Code:\t{t['exitCode']}\n")
        if t.get("signal"):
            d.w(3, f"Signal:\t{t['signal']}\n")
        d.w(3, f"Started:\t{rfc1123z(t['startedAt'], tz)}\n")
        d.w(3, f"Finished:\t{rfc1123z(t['finishedAt'], tz)}\n")
    else:
        d.w(2, f"{name}:\tWaiting\n")


def describe_env(d: Describe, c, pod):
    env = c.get("env") or []
    d.w(2, "Environment:%s\n" % ("" if env else "\t<none>"))
    for e in env:
        if "valueFrom" not in e:
            for i, s in enumerate(str(e.get("value", "")).split("\n")):
                d.w(3, f"{e['name']}:\t{s}\n" if i == 0 else f"\t{s}\n")
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            fp = vf["fieldRef"]["fieldPath"]
            val = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
                   "status.podIP": pod["status"].get("podIP", ""), "spec.nodeName": pod["spec"].get("nodeName", "")}.get(fp, "")
            d.w(3, f"{e['name']}:\t{val} ({vf['fieldRef'].get('apiVersion', 'v1')}:{fp})\n")
        elif "secretKeyRef" in vf:
            r = vf["secretKeyRef"]
            d.w(3, f"{e['name']}:\t<set to the key '{r['key']}' in secret '{r['name']}'>\tOptional: {str(bool(r.get('optional'))).lower()}\n")
        elif "configMapKeyRef" in vf:
            r = vf["configMapKeyRef"]
            d.w(3, f"{e['name']}:\t<set to the key '{r['key']}' of config map '{r['name']}'>\tOptional: {str(bool(r.get('optional'))).lower()}\n")
        elif "resourceFieldRef" in vf:
            d.w(3, f"{e['name']}:\t{vf['resourceFieldRef'].get('_value', '')} ({vf['resourceFieldRef']['resource']})\n")


def describe_envfrom(d: Describe, c):
    ef = c.get("envFrom") or []
    if not ef:
        return
    d.w(2, "Environment Variables from:\n")
    for e in ef:
        if "configMapRef" in e:
            frm, ref = "ConfigMap", e["configMapRef"]
        else:
            frm, ref = "Secret", e["secretRef"]
        opt = str(bool(ref.get("optional"))).lower()
        if e.get("prefix"):
            d.w(3, f"{ref['name']}\t{frm} with prefix '{e['prefix']}'\tOptional: {opt}\n")
        else:
            d.w(3, f"{ref['name']}\t{frm}\tOptional: {opt}\n")


def describe_mounts(d: Describe, c):
    vms = c.get("volumeMounts") or []
    d.w(2, "Mounts:%s\n" % ("" if vms else "\t<none>"))
    for m in sorted(vms, key=lambda m: m["mountPath"]):
        flags = ["ro" if m.get("readOnly") else "rw"]
        if m.get("subPath"):
            flags.append(f'path="{m["subPath"]}"')
        d.w(3, f"{m['mountPath']} from {m['name']} ({','.join(flags)})\n")


def describe_resources(d: Describe, r, level=2):
    r = r or {}
    if r.get("limits"):
        d.w(level, "Limits:\n")
        for k in res_sort(r["limits"]):
            d.w(level + 1, f"{k}:\t{r['limits'][k]}\n")
    if r.get("requests"):
        d.w(level, "Requests:\n")
        for k in res_sort(r["requests"]):
            d.w(level + 1, f"{k}:\t{r['requests'][k]}\n")


def describe_containers(d: Describe, label, containers, statuses, pod, space="", version="new", tz=dt.UTC):
    st = {s["name"]: s for s in (statuses or [])}
    d.w(0, "%s%s:%s\n" % (space, label, "" if containers else " <none>"))
    for c in containers:
        s = st.get(c["name"])
        d.w(1, "%s%s:\n" % (" " if space else "", c["name"]))
        if s is not None:
            d.w(2, f"Container ID:\t{s.get('containerID', '')}\n")
        d.w(2, f"Image:\t{c['image']}\n")
        if s is not None:
            d.w(2, f"Image ID:\t{s.get('imageID', '')}\n")
        ps = container_ports(c.get("ports"))
        if version == "1.6":
            ps16 = ", ".join(f"{p['containerPort']}/{p.get('protocol', 'TCP')}" for p in c.get("ports") or [])
            d.w(2, ("Ports:\t%s\n" if "," in ps16 else "Port:\t%s\n") % ps16)
        else:
            if "," in ps:
                d.w(2, f"Ports:\t{ps}\n")
            else:
                d.w(2, f"Port:\t{ps or '<none>'}\n")
            hp = host_ports(c.get("ports"))
            if "," in hp:
                d.w(2, f"Host Ports:\t{hp}\n")
            else:
                d.w(2, f"Host Port:\t{hp or '<none>'}\n")
        if c.get("command"):
            d.w(2, "Command:\n")
            for x in c["command"]:
                for ln in x.split("\n"):
                    d.w(3, ln + "\n")
        if c.get("args"):
            d.w(2, "Args:\n")
            for x in c["args"]:
                for ln in x.split("\n"):
                    d.w(3, ln + "\n")
        if s is not None:
            describe_state(d, "State", s.get("state", {}), tz)
            if "terminated" in (s.get("lastState") or {}):
                describe_state(d, "Last State", s["lastState"], tz)
            d.w(2, "Ready:\t%s\n" % ("True" if s.get("ready") else "False"))
            d.w(2, "Restart Count:\t%d\n" % s.get("restartCount", 0))
        describe_resources(d, c.get("resources"))
        if c.get("livenessProbe"):
            d.w(2, f"Liveness:\t{describe_probe(c['livenessProbe'])}\n")
        if c.get("readinessProbe"):
            d.w(2, f"Readiness:\t{describe_probe(c['readinessProbe'])}\n")
        if c.get("startupProbe") and version != "1.6":
            d.w(2, f"Startup:\t{describe_probe(c['startupProbe'])}\n")
        describe_envfrom(d, c)
        describe_env(d, c, pod)
        describe_mounts(d, c)


def describe_volumes(d: Describe, volumes, space=""):
    if not volumes:
        d.w(0, f"{space}Volumes:\t<none>\n")
        return
    d.w(0, f"{space}Volumes:\n")
    for v in volumes:
        d.w(1, "%s%s:\n" % (" " if space else "", v["name"]))
        if "projected" in v:
            d.w(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
            for src in v["projected"]["sources"]:
                if "serviceAccountToken" in src:
                    d.w(2, f"TokenExpirationSeconds:\t{src['serviceAccountToken'].get('expirationSeconds', 3607)}\n")
                elif "configMap" in src:
                    d.w(2, f"ConfigMapName:\t{src['configMap']['name']}\n    Optional:\tfalse\n")
                elif "downwardAPI" in src:
                    d.w(2, "DownwardAPI:\ttrue\n")
        elif "configMap" in v:
            d.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                   f"    Name:\t{v['configMap']['name']}\n"
                   f"    Optional:\t{str(bool(v['configMap'].get('optional'))).lower()}\n")
        elif "secret" in v:
            d.w(2, "Type:\tSecret (a volume populated by a Secret)\n"
                   f"    SecretName:\t{v['secret']['secretName']}\n"
                   f"    Optional:\t{str(bool(v['secret'].get('optional'))).lower()}\n")
        elif "emptyDir" in v:
            lim = v["emptyDir"].get("sizeLimit") or "<unset>"
            d.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                   f"    Medium:\t{v['emptyDir'].get('medium', '')}\n"
                   f"    SizeLimit:\t{lim}\n")
        elif "persistentVolumeClaim" in v:
            d.w(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n"
                   f"    ClaimName:\t{v['persistentVolumeClaim']['claimName']}\n"
                   f"    ReadOnly:\t{str(bool(v['persistentVolumeClaim'].get('readOnly'))).lower()}\n")
        elif "hostPath" in v:
            d.w(2, "Type:\tHostPath (bare host directory volume)\n"
                   f"    Path:\t{v['hostPath']['path']}\n"
                   f"    HostPathType:\t{v['hostPath'].get('type', '')}\n")
        else:
            d.w(1, "<unknown>\n")


def describe_volumes_16(d: Describe, volumes):
    if not volumes:
        d.w(0, "Volumes:\t<none>\n")
        return
    d.w(0, "Volumes:\n")
    for v in volumes:
        d.w(1, f"{v['name']}:\n")
        if "secret" in v:
            d.w(2, "Type:\tSecret (a volume populated by a Secret)\n"
                   f"    SecretName:\t{v['secret']['secretName']}\n"
                   f"    Optional:\t{str(bool(v['secret'].get('optional'))).lower()}\n")
        elif "emptyDir" in v:
            d.w(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                   f"    Medium:\t{v['emptyDir'].get('medium', '')}\n")
        elif "configMap" in v:
            d.w(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                   f"    Name:\t{v['configMap']['name']}\n"
                   f"    Optional:\t{str(bool(v['configMap'].get('optional'))).lower()}\n")
        elif "persistentVolumeClaim" in v:
            d.w(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n"
                   f"    ClaimName:\t{v['persistentVolumeClaim']['claimName']}\n"
                   f"    ReadOnly:\t{str(bool(v['persistentVolumeClaim'].get('readOnly'))).lower()}\n")


def qos_class(pod):
    return pod["status"].get("qosClass", "BestEffort")


def controller_of(obj):
    for o in obj["metadata"].get("ownerReferences") or []:
        if o.get("controller"):
            return f"{o['kind']}/{o['name']}"
    return ""


# ----------------------------------------------------------------------------- events

def ev_first(e):
    return e.get("eventTime") if not e.get("firstTimestamp") and e.get("eventTime") else e.get("firstTimestamp")


def ev_last(e):
    if e.get("series"):
        return e["series"]["lastObservedTime"]
    return e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")


def ev_sort_key(e):
    return parse_ts(ev_last(e))


def ev_interval(e, now, fn=human_duration):
    first = since(now, e.get("eventTime"), fn) if e.get("eventTime") else since(now, e.get("firstTimestamp"), fn)
    if e.get("series"):
        return "%s (x%d over %s)" % (since(now, e["series"]["lastObservedTime"], fn), e["series"]["count"], first)
    if (e.get("count") or 1) > 1:
        return "%s (x%d over %s)" % (since(now, e.get("lastTimestamp"), fn), e["count"], first)
    return first


def describe_events_new(d: Describe, events, now):
    if not events:
        d.w(0, "Events:\t<none>\n")
        return
    d.flush()
    d.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    d.w(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=ev_sort_key):
        src = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        d.w(1, "%s\t%s\t%s\t%s\t%s\n" % (e["type"], e["reason"], ev_interval(e, now), src, e["message"].strip()))


def describe_events_119(d: Describe, events, now):
    """kubectl 1.14-1.19: From is 'component, host'; events written through events.k8s.io have no
    firstTimestamp and show <unknown>."""
    if not events:
        d.w(0, "Events:\t<none>\n")
        return
    d.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    d.w(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=ev_sort_key):
        src = e.get("source") or {}
        frm = src.get("component") or e.get("reportingComponent", "")
        if src.get("host"):
            frm += ", " + src["host"]
        first = since(now, e.get("firstTimestamp"))
        if (e.get("count") or 1) > 1:
            age = "%s (x%d over %s)" % (since(now, e.get("lastTimestamp")), e["count"], first)
        else:
            age = first
        d.w(1, "%s\t%s\t%s\t%s\t%s\n" % (e["type"], e["reason"], age, frm, e["message"].strip()))


def describe_events_16(d: Describe, events, now):
    if not events:
        d.w(0, "Events:\t<none>\n")
        return
    d.w(0, "Events:\n  FirstSeen\tLastSeen\tCount\tFrom\tSubObjectPath\tType\tReason\tMessage\n")
    d.w(1, "---------\t--------\t-----\t----\t-------------\t--------\t------\t-------\n")
    for e in sorted(events, key=ev_sort_key):
        src = e.get("source") or {}
        frm = src.get("component", "")
        if src.get("host"):
            frm += ", " + src["host"]
        d.w(1, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n" % (
            since(now, e.get("firstTimestamp"), short_human_duration),
            since(now, e.get("lastTimestamp"), short_human_duration),
            e.get("count", 1), frm, e["involvedObject"].get("fieldPath", ""), e["type"], e["reason"], e["message"]))


# ----------------------------------------------------------------------------- describe pod

def describe_pod(pod, events, now, version="new", tz=dt.UTC):
    """version: 'new' (kubectl 1.29+), '1.19' (1.16-1.19), '1.6'."""
    m, sp, st = pod["metadata"], pod["spec"], pod["status"]
    d = Describe(1, "\t") if version == "1.6" else Describe()
    d.w(0, f"Name:\t{m['name']}\n")
    d.w(0, f"Namespace:\t{m['namespace']}\n")
    if version != "1.6" and sp.get("priority") is not None:
        d.w(0, f"Priority:\t{sp['priority']}\n")
    if version != "1.6" and sp.get("priorityClassName"):
        d.w(0, f"Priority Class Name:\t{sp['priorityClassName']}\n")
    if version == "new" and sp.get("serviceAccountName"):
        d.w(0, f"Service Account:\t{sp['serviceAccountName']}\n")
    if sp.get("nodeName"):
        d.w(0, f"Node:\t{sp['nodeName']}/{st.get('hostIP', '')}\n")
    else:
        d.w(0, "Node:\t<none>\n" if version != "1.6" else "Node:\t/\n")
    if st.get("startTime"):
        d.w(0, f"Start Time:\t{rfc1123z(st['startTime'], tz)}\n")
    labels_multiline(d, "Labels", m.get("labels"))
    if version == "1.6":
        annotations_16(d, m.get("annotations"))
    else:
        annotations_multiline(d, "Annotations", m.get("annotations"))
    d.w(0, f"Status:\t{st['phase']}\n")
    if st.get("reason"):
        d.w(0, f"Reason:\t{st['reason']}\n")
    if st.get("message"):
        d.w(0, f"Message:\t{st['message']}\n")
    d.w(0, f"IP:\t{st.get('podIP', '')}\n")
    if version == "1.6":
        d.w(0, "Controllers:\t%s\n" % (controller_of(pod) or "<none>"))
    else:
        ips = st.get("podIPs") or []
        if ips:
            d.w(0, "IPs:\n")
            for ip in ips:
                d.w(1, f"IP:\t{ip['ip']}\n")
        else:
            d.w(0, "IPs:\t<none>\n")
        if controller_of(pod):
            d.w(0, f"Controlled By:\t{controller_of(pod)}\n")
        if st.get("nominatedNodeName"):
            d.w(0, f"NominatedNodeName:\t{st['nominatedNodeName']}\n")
    if sp.get("initContainers"):
        describe_containers(d, "Init Containers", sp["initContainers"], st.get("initContainerStatuses"), pod, version=version, tz=tz)
    describe_containers(d, "Containers", sp["containers"], st.get("containerStatuses"), pod, version=version, tz=tz)
    if st.get("conditions"):
        d.w(0, "Conditions:\n  Type\tStatus\n")
        for c in st["conditions"]:
            d.w(1, f"{c['type']} \t{c['status']} \n")
    if version == "1.6":
        describe_volumes_16(d, sp.get("volumes"))
    else:
        describe_volumes(d, sp.get("volumes"))
    d.w(0, f"QoS Class:\t{qos_class(pod)}\n")
    labels_multiline(d, "Node-Selectors", sp.get("nodeSelector"))
    if version == "1.6":
        tolerations_multiline_16(d, "Tolerations", sp.get("tolerations"))
    else:
        tolerations_multiline(d, "Tolerations", sp.get("tolerations"))
    if events is not None:
        if version == "new":
            describe_events_new(d, events, now)
        elif version == "1.19":
            describe_events_119(d, events, now)
        else:
            describe_events_16(d, events, now)
    return d.text()


# ----------------------------------------------------------------------------- event tables

def kubectl_get_events(events, now, all_namespaces=False, sort=True):
    """`kubectl get events` (server-side table printer, kubectl >= 1.17): LAST SEEN is the age of the
    last occurrence; OBJECT is lower-case kind/name."""
    rows = [(["NAMESPACE"] if all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    evs = sorted(events, key=ev_sort_key) if sort else events
    for e in evs:
        io_ = e["involvedObject"]
        obj = f"{io_['kind'].lower()}/{io_['name']}" if io_.get("name") else io_["kind"].lower()
        r = ([e["metadata"]["namespace"]] if all_namespaces else []) + [
            since(now, ev_last(e)), e["type"], e["reason"], obj, e["message"].strip()]
        rows.append(r)
    return kubectl_table(rows)


def kubectl_events(events, now, all_namespaces=False):
    """`kubectl events` (kubectl >= 1.26)."""
    rows = [(["NAMESPACE"] if all_namespaces else []) + ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for e in sorted(events, key=ev_sort_key):
        io_ = e["involvedObject"]
        rows.append(([e["metadata"]["namespace"]] if all_namespaces else []) + [
            ev_interval(e, now), e["type"], e["reason"], f"{io_['kind']}/{io_['name']}", e["message"].strip()])
    return kubectl_table(rows)


# ----------------------------------------------------------------------------- serializers

def drop_private(o):
    if isinstance(o, dict):
        return {k: drop_private(v) for k, v in o.items() if not k.startswith("_")}
    if isinstance(o, list):
        return [drop_private(x) for x in o]
    return o


def kubectl_json_list(items):
    """`kubectl get ... -o json`: a v1 List, items carry apiVersion/kind, keys sorted, 4-space indent."""
    doc = {"apiVersion": "v1", "items": drop_private(items), "kind": "List", "metadata": {"resourceVersion": ""}}
    return json.dumps(doc, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def typed_list(kind, api_version, items, resource_version):
    """A typed list as client-go marshals it (support bundles): items have no kind/apiVersion."""
    its = []
    for it in drop_private(items):
        it = dict(it)
        it.pop("apiVersion", None)
        it.pop("kind", None)
        its.append(it)
    return {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": resource_version}, "items": its}


def bundle_json(obj):
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


class _GoYamlDumper(yaml.SafeDumper):
    pass


def _str_rep(dumper, data):
    # go-yaml v2 double-quotes strings that would resolve to another type (true, 80, timestamps);
    # others stay plain or single-quoted as the emitter decides.
    tag = dumper.resolve(yaml.ScalarNode, data, (True, False))
    if tag != "tag:yaml.org,2002:str" or data == "":
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_GoYamlDumper.add_representer(str, _str_rep)


def to_yaml(obj, sort_keys=True):
    return yaml.dump(drop_private(obj), Dumper=_GoYamlDumper, sort_keys=sort_keys, default_flow_style=False,
                     allow_unicode=True, width=80)


def kubectl_yaml_list(items):
    doc = {"apiVersion": "v1", "items": drop_private(items), "kind": "List", "metadata": {"resourceVersion": ""}}
    return to_yaml(doc)


def typed_yaml_list(kind, api_version, items, rv):
    return to_yaml(typed_list(kind, api_version, items, rv))


def describe_job(job, events, now, tz=dt.UTC):
    m, sp, st = job["metadata"], job["spec"], job["status"]
    d = Describe()
    d.w(0, f"Name:\t{m['name']}\n")
    d.w(0, f"Namespace:\t{m['namespace']}\n")
    sel = sp.get("selector", {}).get("matchLabels", {})
    d.w(0, "Selector:\t%s\n" % ",".join(f"{k}={v}" for k, v in sorted(sel.items())))
    labels_multiline(d, "Labels", m.get("labels"))
    annotations_multiline(d, "Annotations", m.get("annotations"))
    if controller_of(job):
        d.w(0, f"Controlled By:\t{controller_of(job)}\n")
    d.w(0, f"Parallelism:\t{sp.get('parallelism', 1)}\n")
    d.w(0, f"Completions:\t{sp['completions']}\n" if sp.get("completions") is not None else "Completions:\t<unset>\n")
    if sp.get("completionMode"):
        d.w(0, f"Completion Mode:\t{sp['completionMode']}\n")
    if "suspend" in sp:
        d.w(0, "Suspend:\t%s\n" % str(sp["suspend"]).lower())
    if sp.get("backoffLimit") is not None:
        d.w(0, f"Backoff Limit:\t{sp['backoffLimit']}\n")
    if sp.get("ttlSecondsAfterFinished") is not None:
        d.w(0, f"TTL Seconds After Finished:\t{sp['ttlSecondsAfterFinished']}\n")
    if st.get("startTime"):
        d.w(0, f"Start Time:\t{rfc1123z(st['startTime'], tz)}\n")
    if st.get("completionTime"):
        d.w(0, f"Completed At:\t{rfc1123z(st['completionTime'], tz)}\n")
    if st.get("startTime") and st.get("completionTime"):
        d.w(0, "Duration:\t%s\n" % human_duration((parse_ts(st["completionTime"]) - parse_ts(st["startTime"])).total_seconds()))
    if sp.get("activeDeadlineSeconds") is not None:
        d.w(0, f"Active Deadline Seconds:\t{sp['activeDeadlineSeconds']}s\n")
    d.w(0, "Pods Statuses:\t%d Active (%d Ready) / %d Succeeded / %d Failed\n" % (
        st.get("active", 0), st.get("ready", 0), st.get("succeeded", 0), st.get("failed", 0)))
    t = sp["template"]
    d.w(0, "Pod Template:\n")
    labels_multiline(d, "  Labels", t["metadata"].get("labels"))
    if t["spec"].get("serviceAccountName"):
        d.w(1, f"Service Account:\t{t['spec']['serviceAccountName']}\n")
    fake_pod = {"metadata": m, "status": {}, "spec": t["spec"]}
    describe_containers(d, "Containers", t["spec"]["containers"], None, fake_pod, space="  ")
    describe_volumes(d, t["spec"].get("volumes"), space="  ")
    labels_multiline(d, "  Node-Selectors", t["spec"].get("nodeSelector"))
    tolerations_multiline(d, "Tolerations", t["spec"].get("tolerations"), initial="  ")
    if events is not None:
        describe_events_new(d, events, now)
    return d.text()
