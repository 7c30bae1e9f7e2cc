"""The diagnosis families read Kubernetes' own wording: scheduler reasons, pull errors, probe
output, exit codes and log lines, each turned into a cause code and its specifics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.diagnosis.images import pull_cause
from agents.diagnosis.logs import classify
from agents.diagnosis.observed import LogLine, ObjectKey
from agents.diagnosis.probes import probe_output
from agents.diagnosis.scheduling import cause_of, parse_reasons

T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(("message", "reasons"), [
    ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
     "2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
     "2 No preemption victims found for incoming pod.",
     [(1, "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"), (2, "Insufficient memory")]),
    ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", [(1, "Insufficient nvidia.com/gpu")]),
    ("0/5 nodes are available: 5 node(s) didn't match Pod's node affinity/selector.",
     [(5, "node(s) didn't match Pod's node affinity/selector")]),
    ("No nodes are available that match all of the following predicates:: Insufficient cpu (3), "
     "MatchNodeSelector (1).", [(3, "Insufficient cpu"), (1, "MatchNodeSelector")]),
    ("0/2 nodes are available: 2 pod has unbound immediate PersistentVolumeClaims.",
     [(2, "pod has unbound immediate PersistentVolumeClaims")]),
])
def test_failed_scheduling_messages_of_old_and_new_schedulers_parse_into_counted_reasons(
        message: str, reasons: list[tuple[int, str]]) -> None:
    assert [(r.count, r.text) for r in parse_reasons(message)] == reasons


@pytest.mark.parametrize(("reason", "cause", "detail"), [
    ("Insufficient nvidia.com/gpu", "insufficient-resource", {"resource": "nvidia.com/gpu"}),
    ("Insufficient cpu", "insufficient-resource", {"resource": "cpu"}),
    ("node(s) didn't match Pod's node affinity/selector", "node-selector-mismatch", {}),
    ("MatchNodeSelector", "node-selector-mismatch", {}),
    ("node(s) had untolerated taint {dedicated: batch}", "untolerated-taint", {"taint": "dedicated"}),
    ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }", "node-not-ready",
     {"taint": "node.kubernetes.io/not-ready"}),
    ("node(s) were unschedulable", "node-not-ready", {}),
    ("Too many pods", "too-many-pods", {}),
    ("pod has unbound immediate PersistentVolumeClaims", "unbound-pvc", {}),
])
def test_each_scheduler_reason_has_its_cause(reason: str, cause: str, detail: dict[str, str]) -> None:
    found, specifics, _ = cause_of(reason)
    assert (found, specifics) == (cause, detail)


@pytest.mark.parametrize(("message", "cause"), [
    ('Failed to pull image "ghcr.io/acme/api:2.4": failed to resolve reference "ghcr.io/acme/api:2.4": '
     'failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized', "image-auth"),
    ('Failed to pull image "docker.io/library/nginx:1.99": rpc error: code = NotFound desc = failed to pull and '
     'unpack image "docker.io/library/nginx:1.99": failed to resolve reference "docker.io/library/nginx:1.99": '
     'docker.io/library/nginx:1.99: not found', "image-not-found"),
    ('Failed to pull image "registry.internal.example:5000/app:1": dial tcp: lookup registry.internal.example '
     'on 10.96.0.10:53: no such host', "registry-dns"),
    ('Failed to pull image "harbor.corp/app:1": x509: certificate signed by unknown authority', "registry-tls"),
    ('Failed to pull image "redis:7": toomanyrequests: You have reached your pull rate limit.',
     "registry-rate-limit"),
])
def test_pull_errors_name_their_cause(message: str, cause: str) -> None:
    assert pull_cause(message)[0] == cause


@pytest.mark.parametrize(("output", "got"), [
    ("HTTP probe failed with statuscode: 503", "HTTP status 503"),
    ('Get "http://10.244.1.7:8080/healthz": dial tcp 10.244.1.7:8080: connect: connection refused',
     "connection refused from http://10.244.1.7:8080/healthz"),
    ('Get "http://10.244.1.7:8080/ready": context deadline exceeded (Client.Timeout exceeded while awaiting '
     'headers)', "no answer in time (timeout) from http://10.244.1.7:8080/ready"),
])
def test_probe_output_says_what_the_probe_got(output: str, got: str) -> None:
    assert probe_output(output)[0] == got


def _line(text: str, signal: str, *, previous: bool = True) -> LogLine:
    return LogLine(pod=ObjectKey("Pod", "shop", "api-0"), container="api", previous=previous, signal=signal,
                   signals=(signal,), text=text, at=T0, source="api.log:3")


@pytest.mark.parametrize(("text", "signal", "cause", "detail"), [
    ("FATAL: environment variable DATABASE_URL is not set", "missing-env", "missing-env-var",
     {"variable": "DATABASE_URL"}),
    ("KeyError: 'REDIS_HOST'", "missing-env", "missing-env-var", {"variable": "REDIS_HOST"}),
    ('dial tcp 10.0.3.4:5432: connect: connection refused', "connection-refused", "dependency-unreachable",
     {"host": "10.0.3.4", "port": "5432"}),
    ("dial tcp: lookup orders-db.shop.svc.cluster.local on 10.96.0.10:53: no such host", "dns-failure",
     "dns-resolution", {"host": "orders-db.shop.svc.cluster.local"}),
    ("open /var/lib/app/data.db: permission denied", "permission-denied", "permission-denied",
     {"path": "/var/lib/app/data.db"}),
    ('Error: unknown flag: --listen-addr', "unknown-command", "unknown-command-or-flag",
     {"argument": "--listen-addr"}),
])
def test_a_log_line_gives_a_cause_and_what_it_names(text: str, signal: str, cause: str,
                                                    detail: dict[str, str]) -> None:
    found = classify([_line(text, signal)])
    assert found is not None and (found.cause, found.detail) == (cause, detail)


def test_the_previous_run_and_the_more_specific_signal_win() -> None:
    lines = [_line("panic: runtime error", "panic", previous=False),
             _line("connection refused to 10.0.0.9:6379", "connection-refused"),
             _line("environment variable CACHE_URL is not set", "missing-env")]
    found = classify(lines)
    assert found is not None and found.cause == "missing-env-var" and found.detail == {"variable": "CACHE_URL"}
