"""No secret value past a reader (core.kube.redact), pure: Secret data, env values, last-applied annotations."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.kube.changes import diff_objects
from core.kube.objects import raw_event_from_object
from core.kube.redact import (
    DEFAULT_SAFE_ENV,
    LAST_APPLIED,
    env_value,
    is_hash,
    redact_object,
    safe_env_names,
    use_safe_env_names,
    value_hash,
)
from core.settings import load_settings

PASSWORD, TOKEN, ROTATED = "hunter2-Pl4intext-pw", "tok-7f3e9a1c5b2d", "rotated-N3w-pw-xyz"
AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def default_safe_names() -> Iterator[None]:
    yield
    use_safe_env_names(DEFAULT_SAFE_ENV)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret(password: str = PASSWORD) -> dict:
    applied = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                          "data": {"password": b64(password)}, "stringData": {"token": TOKEN}})
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "shop", "uid": "s-1", "resourceVersion": "1",
                         "creationTimestamp": "2026-11-20T09:00:00Z",
                         "annotations": {LAST_APPLIED: applied, "team": "db"}},
            "data": {"password": b64(password), "user": b64("admin")}, "stringData": {"token": TOKEN}}


def deployment(api_token: str = TOKEN, db_password: str = PASSWORD) -> dict:
    env = [{"name": "API_TOKEN", "value": api_token}, {"name": "DB_PASSWORD", "value": db_password},
           {"name": "LOG_LEVEL", "value": "info"},
           {"name": "DB_PASS_REF", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    template = {"metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "api:1", "env": env}],
                         "initContainers": [{"name": "init", "image": "busybox",
                                             "env": [{"name": "SEED", "value": db_password}]}]}}
    applied = json.dumps({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"template": template}})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "uid": "d-1", "resourceVersion": "1",
                         "creationTimestamp": "2026-11-20T09:00:00Z", "annotations": {LAST_APPLIED: applied}},
            "spec": {"replicas": 2, "template": template}}


def plaintexts(*values: str) -> list[str]:
    return [form for v in values for form in (v, b64(v))]


def test_value_hash_is_salted_sha256_prefix() -> None:
    assert value_hash(b"x", salt="a/b") == "sha256:" + hashlib.sha256(b"a/b\x00x").hexdigest()[:16]
    assert value_hash(b"x", salt="a/b") != value_hash(b"x", salt="a/c")
    assert is_hash(value_hash(b"x", salt="s")) and not is_hash("sha256:xyz") and not is_hash(PASSWORD)


def test_secret_data_string_data_and_last_applied_are_hashed_keys_kept() -> None:
    original = secret()
    before = copy.deepcopy(original)
    redacted = redact_object(original)
    assert original == before  # the input is not modified
    text = json.dumps(redacted)
    for value in plaintexts(PASSWORD, TOKEN, "admin"):
        assert value not in text
    assert sorted(redacted["data"]) == ["password", "user"] and list(redacted["stringData"]) == ["token"]
    assert all(is_hash(v) for v in [*redacted["data"].values(), *redacted["stringData"].values()])
    applied = json.loads(redacted["metadata"]["annotations"][LAST_APPLIED])
    # the annotation is redacted like the object: the same value, the same hash
    assert applied["data"]["password"] == redacted["data"]["password"]
    assert redacted["metadata"]["annotations"]["team"] == "db"
    # data and stringData of one value hash alike; a rotation shows; redacting twice changes nothing
    as_string = redact_object({**secret(), "data": {}, "stringData": {"password": PASSWORD}})
    assert as_string["stringData"]["password"] == redacted["data"]["password"]
    assert redact_object(secret(ROTATED))["data"]["password"] != redacted["data"]["password"]
    assert redact_object(redacted) == redacted


def test_an_unreadable_last_applied_of_a_secret_is_hashed_whole() -> None:
    obj = secret()
    obj["metadata"]["annotations"][LAST_APPLIED] = f"password: {PASSWORD}"  # not JSON
    assert is_hash(redact_object(obj)["metadata"]["annotations"][LAST_APPLIED])


def test_env_values_are_hashed_unless_safe_and_refs_stay() -> None:
    redacted = redact_object(deployment())
    text = json.dumps(redacted)
    assert PASSWORD not in text and TOKEN not in text
    env = {e["name"]: e for e in redacted["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert is_hash(env["API_TOKEN"]["value"]) and is_hash(env["DB_PASSWORD"]["value"])
    assert env["LOG_LEVEL"]["value"] == "info"  # declared safe by default
    assert env["DB_PASS_REF"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    # the same value in a Pod of the namespace hashes alike (a Deployment, its ReplicaSets, its Pods)
    pod = {"kind": "Pod", "metadata": {"name": "api-1", "namespace": "shop"},
           "spec": {"containers": [{"name": "api", "env": [{"name": "API_TOKEN", "value": TOKEN}]}]}}
    assert redact_object(pod)["spec"]["containers"][0]["env"][0]["value"] == env["API_TOKEN"]["value"]
    # env lists anywhere: a custom resource's too; a non-mapping input comes back as it was
    custom = {"kind": "Rollout", "metadata": {"namespace": "shop"}, "x": [{"env": [{"name": "K", "value": TOKEN}]}]}
    assert TOKEN not in json.dumps(redact_object(custom))
    assert redact_object("text") == "text" and redact_object([1]) == [1]


def test_the_safe_names_setting_decides_what_shows() -> None:
    assert "LOG_LEVEL" in load_settings(environ={}).secrets.safe_env
    settings = load_settings(environ={"TAPIO_SECRETS_SAFE_ENV": "API_TOKEN"})
    use_safe_env_names(settings.secrets.safe_env)
    assert safe_env_names() == {"API_TOKEN"}
    env = {e["name"]: e["value"] for e in redact_object(deployment())["spec"]["template"]["spec"]["containers"][0]["env"]
           if "value" in e}
    assert env["API_TOKEN"] == TOKEN and is_hash(env["LOG_LEVEL"]) and is_hash(env["DB_PASSWORD"])
    assert env_value("API_TOKEN", TOKEN, namespace="shop") == TOKEN


def test_raw_events_carry_no_plaintext_and_changes_still_show() -> None:
    for obj in (secret(), deployment()):
        event = raw_event_from_object(obj, action="SNAPSHOT", source="test")
        for value in plaintexts(PASSWORD, TOKEN, "admin"):
            assert value.encode() not in event.data
    old = json.loads(raw_event_from_object(deployment(), action="SNAPSHOT", source="t").data)
    new = json.loads(raw_event_from_object(deployment(api_token=ROTATED), action="MODIFIED", source="t").data)
    change = diff_objects(old, new)
    assert change is not None
    assert [(c.key, c.change) for c in change.changes] == [("container[api].env.API_TOKEN", "modified")]
    assert change.summary == "Deployment shop/api: container[api].env.API_TOKEN modified"
    # the change record of objects no reader redacted is hashed too, with the same hashes
    raw_change = diff_objects(deployment(), deployment(api_token=ROTATED))
    assert raw_change is not None and raw_change.changes == change.changes
    text = json.dumps([(c.key, c.old, c.new) for c in raw_change.changes]) + raw_change.summary
    assert TOKEN not in text and ROTATED not in text
    safe = diff_objects(deployment(), {**deployment(), "spec": {**deployment()["spec"], "template": {
        "spec": {"containers": [{"name": "api", "image": "api:1", "env": [{"name": "LOG_LEVEL", "value": "debug"}]}]}}}})
    assert safe is not None and "env.LOG_LEVEL modified (info -> debug)" in safe.summary
    secret_change = diff_objects(json.loads(raw_event_from_object(secret(), action="SNAPSHOT", source="t").data),
                                 json.loads(raw_event_from_object(secret(ROTATED), action="MODIFIED", source="t").data))
    assert secret_change is not None and [c.key for c in secret_change.changes] == ["password"]


def test_a_live_secret_and_the_same_secret_replayed_share_id() -> None:
    from collectors.kubeapi import redact_secret  # what the live watchers keep and emit

    live = raw_event_from_object(redact_secret(secret()), action="SNAPSHOT", source="kubeapi")
    replayed = raw_event_from_object(secret(), action="SNAPSHOT", source="file")
    assert live.id == replayed.id and live.data == replayed.data
