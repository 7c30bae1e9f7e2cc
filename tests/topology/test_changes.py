"""Pure tests of core.kube.changes.diff_objects: ConfigMaps, Secrets (hashes only), workload templates."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import msgspec

from core.kube.changes import VALUE_CHARS, KeyChange, diff_objects, secret_hash

SCENARIO = Path(__file__).resolve().parents[2] / "patterns" / "scenarios" / "configmap-crashloop"


def scenario_objects() -> list[dict]:
    return json.loads((SCENARIO / "objects.json").read_text())["items"]


def watch_objects(name: str) -> list[dict]:
    """A pretty-printed concatenated JSON watch stream -> its watch events."""
    decoder, text, out, pos = json.JSONDecoder(), (SCENARIO / name).read_text(), [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        out.append(value)
    return out


def deployment() -> dict:
    return copy.deepcopy(next(o for o in scenario_objects() if o["kind"] == "Deployment"))


def test_scenario_configmap_edit() -> None:
    before = next(o for o in scenario_objects() if o["kind"] == "ConfigMap")
    added, modified = watch_objects("configmap-watch.json")
    assert (added["type"], modified["type"]) == ("ADDED", "MODIFIED")
    after = modified["object"]
    change = diff_objects(before, after)
    assert change is not None
    assert change.changes == [KeyChange(key="nginx.conf", change="modified",
                                        old=before["data"]["nginx.conf"], new=after["data"]["nginx.conf"])]
    assert "proxy_pass http" in change.changes[0].old and "proxy_passs http" in change.changes[0].new
    assert (change.kind, change.namespace, change.name) == ("ConfigMap", "shop", "nginx-config")
    assert change.uid == "f3cf92ca-fd30-4536-b649-d092f11fab1f"
    assert change.resource_version == "61877" and change.revision is None
    assert change.summary == "ConfigMap shop/nginx-config: key nginx.conf modified"
    # the ADDED object equals the listed one but for managedFields: nothing tracked changed
    assert diff_objects(before, added["object"]) is None
    assert diff_objects(added["object"], after) == change


def test_configmap_added_removed_truncated_binary() -> None:
    old = {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "2"},
           "data": {"keep": "1", "gone": "x", "big": "a"},
           "binaryData": {"blob": base64.b64encode(b"\x00\x01").decode()}}
    new = copy.deepcopy(old)
    del new["data"]["gone"]
    new["data"]["new"] = "y"
    new["data"]["big"] = "b" * 2000
    new["binaryData"]["blob"] = base64.b64encode(b"\x00\x02").decode()
    change = diff_objects(old, new)
    assert change is not None
    by_key = {c.key: c for c in change.changes}
    assert [c.key for c in change.changes] == ["big", "blob", "gone", "new"]
    assert (by_key["gone"].change, by_key["gone"].old, by_key["gone"].new) == ("removed", "x", None)
    assert (by_key["new"].change, by_key["new"].new) == ("added", "y")
    assert by_key["big"].new.startswith("b" * VALUE_CHARS) and by_key["big"].new.endswith("(2000 chars)")
    assert len(by_key["big"].new) < VALUE_CHARS + 20
    assert by_key["blob"].old.startswith("binary 2 bytes sha256:") and by_key["blob"].old != by_key["blob"].new
    assert change.summary == ("ConfigMap n/c: key big modified, key blob modified, key gone removed (x), "
                              "key new added (y)")
    created = diff_objects(None, old)
    assert created is not None and {c.change for c in created.changes} == {"added"}


def test_secret_change_carries_hashes_never_values() -> None:
    old_value, new_value = b"s3cr3t-old-password", b"s3cr3t-new-password"
    meta = {"name": "db", "namespace": "shop", "uid": "s-1", "resourceVersion": "9",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "not tracked"}}
    old = {"kind": "Secret", "metadata": meta, "type": "Opaque",
           "data": {"password": base64.b64encode(old_value).decode(), "user": base64.b64encode(b"app").decode()}}
    new = copy.deepcopy(old)
    new["data"]["password"] = base64.b64encode(new_value).decode()
    new["data"]["api-token"] = base64.b64encode(b"tok-123456").decode()
    change = diff_objects(old, new)
    assert change is not None
    assert [(c.key, c.change) for c in change.changes] == [("api-token", "added"), ("password", "modified")]
    password = change.changes[1]
    expected_old = "sha256:" + hashlib.sha256(b"shop/db/password\x00" + old_value).hexdigest()[:16]
    assert password.old == expected_old == secret_hash(old_value, salt="shop/db/password")
    assert password.new == secret_hash(new_value, salt="shop/db/password")
    encoded = msgspec.json.encode(change).decode()
    for value in (old_value, new_value, b"tok-123456"):
        assert value.decode() not in encoded and base64.b64encode(value).decode() not in encoded
    assert change.summary == "Secret shop/db: key api-token added, key password modified"
    # same value again: nothing changed; stringData hashes like the decoded data
    assert diff_objects(new, copy.deepcopy(new)) is None
    as_string = {**copy.deepcopy(new), "data": {}, "stringData": {
        "password": new_value.decode(), "api-token": "tok-123456", "user": "app"}}
    assert diff_objects(new, as_string) is None


def test_deployment_image_change_and_revision() -> None:
    old, new = deployment(), deployment()
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27.0"
    new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
    new["metadata"]["resourceVersion"] = "70000"
    new["status"] = {"readyReplicas": 3}
    change = diff_objects(old, new)
    assert change is not None
    assert change.changes == [
        KeyChange(key="container[nginx].image", change="modified", old="nginx:1.25.3", new="nginx:1.27.0"),
        KeyChange(key="revision", change="modified", old="1", new="2")]
    assert (change.kind, change.revision, change.resource_version) == ("Deployment", "2", "70000")
    assert change.summary == ("Deployment shop/nginx: container[nginx].image modified (nginx:1.25.3 -> nginx:1.27.0), "
                              "revision modified (1 -> 2)")


def test_pod_template_keys() -> None:
    old, new = deployment(), deployment()
    container = new["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--debug"]
    container["env"] = [{"name": "LOG_LEVEL", "value": "debug"},
                        {"name": "DB_PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container["envFrom"] = [{"configMapRef": {"name": "extra"}}]
    container["resources"]["limits"]["memory"] = "256Mi"
    container["livenessProbe"]["failureThreshold"] = 5
    container["startupProbe"] = {"tcpSocket": {"port": 80}, "periodSeconds": 2}
    new["spec"]["replicas"] = 3
    new["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "setup", "image": "busybox", "command": ["sh", "-c", "true"]}]
    change = diff_objects(old, new)
    assert change is not None
    got = {c.key: (c.change, c.old, c.new) for c in change.changes}
    probe = "exec nginx -t -c /etc/nginx/custom/nginx.conf period=10 timeout=1 failures={} successes=1"
    assert got == {
        "container[nginx].args": ("added", None, '["--debug"]'),
        "container[nginx].env.LOG_LEVEL": ("added", None, "debug"),
        "container[nginx].env.DB_PASS": ("added", None, "secretKeyRef db/password"),
        "container[nginx].env.POD": ("added", None, "fieldRef metadata.name"),
        "container[nginx].envFrom": ("added", None, "configMapRef:extra"),
        "container[nginx].resources.limits.memory": ("modified", "128Mi", "256Mi"),
        "container[nginx].livenessProbe": ("modified", probe.format(3), probe.format(5)),
        "container[nginx].startupProbe": ("added", None, "tcpSocket :80 period=2"),
        "initContainer[setup].image": ("added", None, "busybox"),
        "initContainer[setup].command": ("added", None, '["sh","-c","true"]'),
        "replicas": ("modified", "6", "3"),
    }
    assert change.summary.endswith("and 7 more")
    volume_change = deployment()
    volume_change["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "nginx-config-v2"
    moved = diff_objects(old, volume_change)
    assert moved is not None and [(c.key, c.old, c.new) for c in moved.changes] == [
        ("volume[config]", "configMap:nginx-config", "configMap:nginx-config-v2")]


def test_cronjob_job_template_and_untracked() -> None:
    cron = {"kind": "CronJob", "metadata": {"name": "nightly", "namespace": "ops", "uid": "c"},
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "run", "image": "tool:1"}]}}}}}}
    newer = copy.deepcopy(cron)
    newer["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "tool:2"
    change = diff_objects(cron, newer)
    assert change is not None and [(c.key, c.old, c.new) for c in change.changes] == [
        ("container[run].image", "tool:1", "tool:2")]
    # kinds Tapio does not track, and changes it does not track
    service = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}}
    assert diff_objects(service, {**service, "spec": {"type": "NodePort"}}) is None
    status_only = deployment()
    status_only["status"] = {"replicas": 6, "unavailableReplicas": 6}
    assert diff_objects(deployment(), status_only) is None


def test_scenario_pod_watch_is_status_only() -> None:
    """The pods' MODIFIED records (restart counts, states) change nothing Tapio tracks."""
    listed = {o["metadata"]["uid"]: o for o in scenario_objects() if o["kind"] == "Pod"}
    lines = (SCENARIO / "pods-watch.json").read_text().splitlines()
    records = [json.loads(line)["object"] for line in lines if line.strip()]
    assert len(records) == 36
    assert all(diff_objects(listed[p["metadata"]["uid"]], p) is None for p in records)
