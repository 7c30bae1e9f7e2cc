"""Object builders: pods, events, controllers in the shape the API server returns them."""
from __future__ import annotations

import datetime as dt
import os
import random

import yaml

from k8sfmt import iso, iso_micro, parse_ts

ROOT = os.environ.get("REC_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class Rand:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def uid(self):
        h = "%032x" % self.r.getrandbits(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[self.r.randrange(4)]}{h[17:20]}-{h[20:32]}"

    def hex(self, n=64):
        return "".join(self.r.choice("0123456789abcdef") for _ in range(n))

    def suffix(self, n=5):
        return "".join(self.r.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))

    def hash10(self):
        return "".join(self.r.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(self.r.choice([9, 10])))

    def rv(self):
        return str(self.r.randrange(1_000_000, 99_000_000))

    def ip(self, prefix):
        return f"{prefix}.{self.r.randrange(2, 250)}"

    def choice(self, xs):
        return self.r.choice(xs)

    def randint(self, a, b):
        return self.r.randint(a, b)

    def random(self):
        return self.r.random()


def T(s):
    return parse_ts(s)


def add(t, seconds):
    return T(t) + dt.timedelta(seconds=seconds)


def ts(t):
    return iso(T(t))


# ----------------------------------------------------------------------------- containers

def ctr(name, image, ports=None, env=None, resources=None, command=None, args=None, mounts=None,
        liveness=None, readiness=None, startup=None, env_from=None, pull="IfNotPresent"):
    c = {"name": name, "image": image}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if ports:
        c["ports"] = [dict(containerPort=p[0], name=p[1], protocol="TCP") if isinstance(p, tuple) else
                      dict(containerPort=p, protocol="TCP") for p in ports]
    if env_from:
        c["envFrom"] = env_from
    if env:
        c["env"] = env
    c["resources"] = resources or {}
    if mounts:
        c["volumeMounts"] = mounts
    if liveness:
        c["livenessProbe"] = liveness
    if readiness:
        c["readinessProbe"] = readiness
    if startup:
        c["startupProbe"] = startup
    c["terminationMessagePath"] = "/dev/termination-log"
    c["terminationMessagePolicy"] = "File"
    c["imagePullPolicy"] = pull
    return c


def http_probe(path, port, delay=0, timeout=1, period=10, success=1, failure=3, scheme="HTTP"):
    return {"httpGet": {"path": path, "port": port, "scheme": scheme}, "initialDelaySeconds": delay,
            "timeoutSeconds": timeout, "periodSeconds": period, "successThreshold": success,
            "failureThreshold": failure}


def exec_probe(cmd, delay=0, timeout=1, period=10, success=1, failure=3):
    return {"exec": {"command": cmd}, "initialDelaySeconds": delay, "timeoutSeconds": timeout,
            "periodSeconds": period, "successThreshold": success, "failureThreshold": failure}


def tcp_probe(port, delay=0, timeout=1, period=10, success=1, failure=3):
    return {"tcpSocket": {"port": port}, "initialDelaySeconds": delay, "timeoutSeconds": timeout,
            "periodSeconds": period, "successThreshold": success, "failureThreshold": failure}


def env(name, value=None, secret=None, cm=None, field=None):
    if secret:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret[0], "key": secret[1]}}}
    if cm:
        return {"name": name, "valueFrom": {"configMapKeyRef": {"name": cm[0], "key": cm[1]}}}
    if field:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": field}}}
    return {"name": name, "value": value}


def res(req_cpu=None, req_mem=None, lim_cpu=None, lim_mem=None, extra_req=None, extra_lim=None):
    r = {}
    lim = {}
    if lim_cpu:
        lim["cpu"] = lim_cpu
    if lim_mem:
        lim["memory"] = lim_mem
    if extra_lim:
        lim.update(extra_lim)
    req = {}
    if req_cpu:
        req["cpu"] = req_cpu
    if req_mem:
        req["memory"] = req_mem
    if extra_req:
        req.update(extra_req)
    if lim:
        r["limits"] = lim
    if req:
        r["requests"] = req
    return r


def qos_of(containers):
    any_set = False
    guaranteed = True
    for c in containers:
        r = c.get("resources") or {}
        lim, req = r.get("limits", {}), r.get("requests", {})
        if lim or req:
            any_set = True
        for k in ("cpu", "memory"):
            if k not in lim or req.get(k, lim.get(k)) != lim.get(k):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# ----------------------------------------------------------------------------- statuses

def running(started):
    return {"running": {"startedAt": ts(started)}}


def waiting(reason, message=None):
    w = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def terminated(exit_code, reason, started, finished, container_id=None, message=None, signal=None):
    t = {"exitCode": exit_code}
    if signal:
        t["signal"] = signal
    t["reason"] = reason
    if message:
        t["message"] = message
    t["startedAt"] = ts(started)
    t["finishedAt"] = ts(finished)
    if container_id:
        t["containerID"] = container_id
    return {"terminated": t}


def cstatus(rnd, name, image, image_id=None, state=None, last=None, ready=False, restarts=0, started=None,
            runtime="containerd", with_id=True):
    s = {"name": name, "state": state or {}, "lastState": last or {}, "ready": ready, "restartCount": restarts,
         "image": full_image(image)}
    if runtime == "docker":
        short = image[len("docker.io/"):] if image.startswith("docker.io/") else image
        s["image"] = short
        if with_id and image_id is None:
            repo = short.rsplit(":", 1)[0] if ":" in short.split("/")[-1] else short
            image_id = f"docker-pullable://{repo}@sha256:{rnd.hex()}"
    if image_id is not None:
        s["imageID"] = image_id
    elif with_id:
        s["imageID"] = image_digest_ref(image, rnd)
    else:
        s["imageID"] = ""
    if with_id:
        s["containerID"] = f"{runtime}://{rnd.hex()}"
    if started is not None:
        s["started"] = started
    return s


def full_image(image):
    first = image.split("/")[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    if "/" not in image:
        return "docker.io/library/" + image
    return "docker.io/" + image


def image_digest_ref(image, rnd):
    repo = full_image(image).rsplit(":", 1)[0] if ":" in full_image(image).split("/")[-1] else full_image(image)
    return f"{repo}@sha256:{rnd.hex()}"


# ----------------------------------------------------------------------------- pods

DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def kube_api_access(rnd):
    return {"name": "kube-api-access-" + rnd.suffix(5), "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ], "defaultMode": 420}}


def pod(rnd, ns, name, containers, *, created, labels=None, annotations=None, owner=None, node=None, node_ip=None,
        pod_ip=None, phase="Running", conditions=None, statuses=None, init_containers=None, init_statuses=None,
        volumes=None, sa="default", node_selector=None, tolerations=None, affinity=None, restart_policy="Always",
        start_time=None, priority=0, priority_class=None, reason=None, message=None, qos=None,
        api_access=True, generate_name=None, extra_spec=None, nominated=None, deletion=None):
    uid = rnd.uid()
    meta = {"name": name}
    if not generate_name and owner and owner[1] in ("ReplicaSet", "Job", "DaemonSet") and name != "x":
        generate_name = name.rsplit("-", 1)[0] + "-"
    if generate_name:
        meta["generateName"] = generate_name
    meta["namespace"] = ns
    meta["uid"] = uid
    meta["resourceVersion"] = rnd.rv()
    meta["creationTimestamp"] = ts(created)
    if deletion:
        meta["deletionTimestamp"] = ts(deletion)
        meta["deletionGracePeriodSeconds"] = 30
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "uid": owner[3],
                                    "controller": True, "blockOwnerDeletion": True}]
    vols = list(volumes or [])
    api_vol = None
    if api_access:
        api_vol = kube_api_access(rnd)
        vols.append(api_vol)
        for c in containers + (init_containers or []):
            c.setdefault("volumeMounts", []).append({"name": api_vol["name"], "readOnly": True,
                                                     "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
            # keep key order: move terminationMessagePath etc. after volumeMounts is fine for JSON readers
    spec = {"volumes": vols}
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["restartPolicy"] = restart_policy
    spec["terminationGracePeriodSeconds"] = 30
    spec["dnsPolicy"] = "ClusterFirst"
    if node_selector:
        spec["nodeSelector"] = node_selector
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    if node:
        spec["nodeName"] = node
    spec["securityContext"] = {}
    if affinity:
        spec["affinity"] = affinity
    spec["schedulerName"] = "default-scheduler"
    spec["tolerations"] = tolerations if tolerations is not None else [dict(t) for t in DEFAULT_TOLERATIONS]
    if priority_class:
        spec["priorityClassName"] = priority_class
    spec["priority"] = priority
    spec["enableServiceLinks"] = True
    spec["preemptionPolicy"] = "PreemptLowerPriority"
    if extra_spec:
        spec.update(extra_spec)
    status = {"phase": phase}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if conditions is not None:
        status["conditions"] = conditions
    if node_ip:
        status["hostIP"] = node_ip
        status["hostIPs"] = [{"ip": node_ip}]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if nominated:
        status["nominatedNodeName"] = nominated
    if start_time or (node and phase != "Pending") or statuses:
        status["startTime"] = ts(start_time or created)
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if statuses is not None:
        status["containerStatuses"] = statuses
    status["qosClass"] = qos or qos_of(containers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def cond(type_, status, t, reason=None, message=None, probe=None):
    c = {"type": type_, "status": status, "lastProbeTime": probe, "lastTransitionTime": ts(t)}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def running_conditions(created, sched, ready_at=None, not_ready_since=None, containers=("app",), k8s="1.31",
                       init_done=None):
    """Pod conditions in the order the kubelet reports them."""
    cs = []
    if k8s >= "1.29":
        cs.append(cond("PodReadyToStartContainers", "True", add(sched, 2)))
    cs.append(cond("Initialized", "True", init_done or sched))
    if not_ready_since is not None:
        names = ", ".join(containers) if isinstance(containers, (list, tuple)) else containers
        cs.append(cond("Ready", "False", not_ready_since, "ContainersNotReady", f"containers with unready status: [{names}]"))
        cs.append(cond("ContainersReady", "False", not_ready_since, "ContainersNotReady", f"containers with unready status: [{names}]"))
    else:
        cs.append(cond("Ready", "True", ready_at))
        cs.append(cond("ContainersReady", "True", ready_at))
    cs.append(cond("PodScheduled", "True", sched))
    return cs


def pending_conditions(t, message, k8s="1.31"):
    return [cond("PodScheduled", "False", t, "Unschedulable", message)]


def owner_ref(api, kind, name, uid):
    return (api, kind, name, uid)


# ----------------------------------------------------------------------------- events

class Events:
    def __init__(self, rnd, ns_default=None):
        self.rnd = rnd
        self.items = []
        self.ns_default = ns_default

    def add(self, obj, reason, message, *, type_="Normal", component="kubelet", host=None, first, last=None,
            count=1, field_path=None, new_api=False, series=None, instance=None):
        """obj: a pod/other object dict or (kind, ns, name, uid, apiVersion) tuple."""
        if isinstance(obj, dict):
            kind, ns, name, uid, apiv = obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"], \
                obj["metadata"]["uid"], obj.get("apiVersion", "v1")
            rv_obj = obj["metadata"].get("resourceVersion")
        else:
            kind, ns, name, uid, apiv = obj
            rv_obj = None
        ev_ns = ns or "default"
        last = last or first
        e = {"apiVersion": "v1", "kind": "Event", "metadata": {
            "name": f"{name}.{self.rnd.hex(16)[:16]}", "namespace": ev_ns, "uid": self.rnd.uid(),
            "resourceVersion": self.rnd.rv(), "creationTimestamp": ts(first)}}
        io_ = {"kind": kind}
        if ns:
            io_["namespace"] = ns
        io_["name"] = name
        io_["uid"] = uid
        io_["apiVersion"] = apiv
        if rv_obj and kind not in ("Node",):
            io_["resourceVersion"] = rv_obj
        if field_path:
            io_["fieldPath"] = field_path
        e["involvedObject"] = io_
        e["reason"] = reason
        e["message"] = message
        if new_api:
            # written through events.k8s.io (scheduler, newer controllers): eventTime, no first/lastTimestamp
            e["source"] = {}
            e["firstTimestamp"] = None
            e["lastTimestamp"] = None
            e["type"] = type_
            e["eventTime"] = iso_micro(T(first) + dt.timedelta(microseconds=self.rnd.randint(1000, 999999)))
            if count > 1:
                e["series"] = {"count": count, "lastObservedTime": iso_micro(T(last) + dt.timedelta(microseconds=self.rnd.randint(1000, 999999)))}
            e["action"] = {"FailedScheduling": "Scheduling", "Scheduled": "Binding"}.get(reason, reason)
            e["reportingComponent"] = component
            e["reportingInstance"] = instance or f"{component}-{host or 'cp-1'}"
        else:
            src = {"component": component}
            if host:
                src["host"] = host
            e["source"] = src
            e["firstTimestamp"] = ts(first)
            e["lastTimestamp"] = ts(last)
            e["count"] = count
            e["type"] = type_
            e["eventTime"] = None
            e["reportingComponent"] = component
            e["reportingInstance"] = host or instance or ""
        self.items.append(e)
        return e

    def for_object(self, name, kind=None):
        return [e for e in self.items if e["involvedObject"]["name"] == name and (kind is None or e["involvedObject"]["kind"] == kind)]


# ----------------------------------------------------------------------------- files

def write(case_dir, rel, text):
    p = os.path.join(ROOT, case_dir, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)


def labels_yaml(case, family, formats, incident, capture_time, root_cause=None):
    d = {"case": case, "family": family, "formats": formats, "incident": incident}
    if incident:
        d["root_cause"] = root_cause
    d["capture_time"] = capture_time
    lines = [f"case: {case}", f"family: {family}", "formats: [" + ", ".join(formats) + "]",
             f"incident: {'true' if incident else 'false'}"]
    if incident:
        lines.append("root_cause:")
        lines.append(f"  object: {root_cause['object']}")
        lines.append(f"  cause: {root_cause['cause']}")
        lines.append("  mentions: [" + ", ".join(_q(m) for m in root_cause["mentions"]) + "]")
        if root_cause.get("caused_by"):
            lines.append(f"  caused_by: {root_cause['caused_by']}")
    lines.append(f'capture_time: "{capture_time}"')
    text = "\n".join(lines) + "\n"
    assert yaml.safe_load(text) == d, (yaml.safe_load(text), d)
    return text


def _q(s):
    if not isinstance(yaml.safe_load(s), str):
        return '"' + s + '"'
    if any(ch in s for ch in ":,[]{}#&*!|>'\"%@`") or s.strip() != s or s.lower() in ("true", "false", "null", "yes", "no"):
        return '"' + s.replace('"', '\\"') + '"'
    return s


def node(rnd, name, ip, *, created, labels=None, taints=None, ready=True, ready_reason=None, ready_msg=None,
         ready_since=None, heartbeat=None, conds_extra=None, cpu="4", mem_ki=16318176, pods="110", kubelet="v1.31.4",
         os_image="Ubuntu 22.04.5 LTS", kernel="5.15.0-126-generic", runtime="containerd://1.7.24",
         unschedulable=False, pressure=None, provider_id=None, pod_cidr=None, hostname=None, arch="amd64",
         gpu=None):
    hb = heartbeat or created
    lt = ready_since or created
    lab = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
           "kubernetes.io/hostname": hostname or name, "kubernetes.io/os": "linux"}
    lab.update(labels or {})
    meta = {"name": name, "uid": rnd.uid(), "resourceVersion": rnd.rv(), "creationTimestamp": ts(created),
            "labels": lab, "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                           "volumes.kubernetes.io/controller-managed-attach-detach": "true"}}
    spec = {}
    if pod_cidr:
        spec["podCIDR"] = pod_cidr
        spec["podCIDRs"] = [pod_cidr]
    if provider_id:
        spec["providerID"] = provider_id
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = taints
    pressure = pressure or {}

    def pc(type_, true_reason, false_reason, false_msg, true_msg):
        st = pressure.get(type_)
        if ready == "Unknown":
            return {"type": type_, "status": "Unknown", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(lt),
                    "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}
        if st:
            return {"type": type_, "status": "True", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(st),
                    "reason": true_reason, "message": true_msg}
        return {"type": type_, "status": "False", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(created),
                "reason": false_reason, "message": false_msg}

    conds = [
        pc("MemoryPressure", "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory",
           "kubelet has sufficient memory available", "kubelet has insufficient memory available"),
        pc("DiskPressure", "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
           "kubelet has disk pressure"),
        pc("PIDPressure", "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "kubelet has sufficient PID available",
           "kubelet has insufficient PID available"),
    ]
    if ready == "Unknown":
        conds.append({"type": "Ready", "status": "Unknown", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(lt),
                      "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."})
    elif ready:
        conds.append({"type": "Ready", "status": "True", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(lt),
                      "reason": "KubeletReady", "message": ready_msg or "kubelet is posting ready status"})
    else:
        conds.append({"type": "Ready", "status": "False", "lastHeartbeatTime": ts(hb), "lastTransitionTime": ts(lt),
                      "reason": ready_reason or "KubeletNotReady", "message": ready_msg})
    if conds_extra:
        conds = conds_extra + conds
    cap = {"cpu": cpu, "ephemeral-storage": "101430960Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
           "memory": f"{mem_ki}Ki", "pods": pods}
    alloc = {"cpu": f"{int(cpu) * 1000 - 80}m" if cpu.isdigit() else cpu, "ephemeral-storage": "93478772582",
             "hugepages-1Gi": "0", "hugepages-2Mi": "0", "memory": f"{mem_ki - 461024}Ki", "pods": pods}
    if gpu:
        cap["nvidia.com/gpu"] = gpu
        alloc["nvidia.com/gpu"] = gpu
    status = {"capacity": cap, "allocatable": alloc, "conditions": conds,
              "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": hostname or name}],
              "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
              "nodeInfo": {"machineID": rnd.hex(32), "systemUUID": rnd.uid(), "bootID": rnd.uid(),
                           "kernelVersion": kernel, "osImage": os_image, "containerRuntimeVersion": runtime,
                           "kubeletVersion": kubelet, "kubeProxyVersion": kubelet if kubelet < "v1.33" else "",
                           "operatingSystem": "linux", "architecture": arch}}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status}
