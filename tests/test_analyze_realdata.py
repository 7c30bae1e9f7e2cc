"""`tapio analyze` on the real recordings in shared/realdata: each names its root cause first.

In-process, as `tapio analyze` runs by default (`tests/test_analyze.py` checks that the isolated
dataflow gives the same answer). Expected answers come from the recordings' own test cases
(holmesgpt `test_case.yaml`), the troubleshoot analyzers the files were recorded for, and the
realdata README: an OOM-killed CrashLoopBackOff pod, an image that cannot be pulled, a PVC whose
StorageClass does not exist, an OpenShift install whose transient failures all resolved (no
ongoing incident), and the troubleshoot files (an OOM-killed Job pod, a GPU pod no node can take,
an init container whose command does not exist, an image pull failure after a Job failure, and a
namespace with several incidents where the hostPath mount is the one still failing at the end).
A hypothesis names the cause its object's state shows (`pattern`), with the behavior patterns
that matched the same objects (`patterns`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.analyze import analyze

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
HOLMES = REALDATA / "holmesgpt"
TROUBLESHOOT = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files"


@pytest.mark.parametrize("inputs, now, cause, pattern, scope, says", [
    (["test_investigate/01_oom_kill/kubectl_describe.txt"], None, "oom-killed", "oom-kill-loop",
     "Pod/default/analytics-exporter-fast-76897854c-cw5wh", ["OOMKilled", "100Mi"]),
    (["test_ask_holmes/10_image_pull_backoff/kubectl_describe.txt"], None, "image-auth", "image-pull-failure",
     "Pod/default/customer-relations-webapp-7c67c65579-ch5p9", ["yourcompany/crw:latest", "pull access denied"]),
    (["test_ask_holmes/24a_misconfigured_pvc_basic/kubectl_describe_persistentvolumeclaim_redis-standard-pvc_app-24a.txt",
      "test_ask_holmes/24a_misconfigured_pvc_basic/kubectl_describe_pod_redis-747ffc844f-f9ghd_app-24a.txt"],
     datetime(2024, 11, 26, 11, 40, tzinfo=UTC), "missing-storageclass", "pvc-provisioning-failure",
     "PersistentVolumeClaim/app-24a/redis-standard-pvc", ["standard-v2", "redis-747ffc844f-f9ghd"]),
], ids=["oom-kill", "image-pull", "missing-storageclass"])
def test_the_recording_names_its_root_cause_first(inputs: list[str], now: datetime | None, cause: str, pattern: str,
                                                  scope: str, says: list[str]) -> None:
    result = analyze([str(HOLMES / i) for i in inputs], now=now)
    assert result.errors == [] and result.hypotheses, result.verdict
    top = result.hypotheses[0]
    assert (top.pattern, top.scope, top.ongoing) == (cause, scope, True), \
        [(c.pattern, c.scope, c.ongoing) for c in result.hypotheses]
    assert pattern in top.patterns  # the behavior pattern agrees, as one hypothesis
    assert all(word in top.message for word in says), top.message
    assert result.verdict.startswith(f"most likely: {cause}")
    assert all(ev.source.startswith(str(HOLMES)) for ev in top.evidence)  # each line names its file


def test_relative_ages_without_a_capture_time_resolve_and_say_against_what() -> None:
    """Both describes (a Pending pod, its claim) show only ages, no absolute time, and no --now is
    given: they are read anyway, the ages counted back from the files' modification time, and a
    note says so for each file."""
    folder = HOLMES / "test_ask_holmes" / "24a_misconfigured_pvc_basic"
    files = sorted(folder.glob("kubectl_describe_*.txt"))
    result = analyze([str(p) for p in files])
    assert result.errors == [] and result.hypotheses[0].pattern == "missing-storageclass"
    notes = [n for n in result.notes if "resolved against" in n and "the files' modification time" in n]
    assert sorted(n.split(": ")[0] for n in notes) == [str(p) for p in files], result.notes


def test_an_install_whose_failures_resolved_is_no_ongoing_incident() -> None:
    result = analyze([str(REALDATA / "must-gather-clean")])
    assert result.events == 813 and result.errors == []
    assert all(not c.ongoing for c in result.hypotheses)
    assert result.verdict.startswith(("no incident found", "no ongoing incident"))


@pytest.mark.parametrize("inputs, cause, pattern, scope, says, also", [
    (["pods/message-oomkill-pod.json"], "oom-killed", "job-oom-kill", "Pod/message-oomkill-pod/oom-kill-job3-gbb89",
     ["OOMKilled", "100Mi"], []),
    (["pods/message-pending-pod-resources.json"], "insufficient-resource", "unschedulable-pod",
     "Pod/message-pending-pod-resources/pending-pod-resources-5fddcf7688-djjfc", ["nvidia.com/gpu"], []),
    (["pods/message-pod-init-crashloop-backoff.json"], "command-not-found", "container-cannot-start",
     "Pod/message-pod-init-crashloop-backoff/init-demo2", ['"wge"', "executable file not found"], []),
    # the Job failed an hour before the image pull started failing: ranked below it, as no longer going on
    (["events/message-image-pull-fail.json"], "registry-tls", "image-pull-failure",
     "Pod/message-image-pull-fail/no-image-deployment-849c4c4958-rxqmt", ["noimage.com/no-such-image", "x509"],
     ["job-backoff-limit"]),
], ids=["oom-killed-job-pod", "gpu-unschedulable", "init-command-not-found", "image-pull-after-job-failure"])
def test_each_troubleshoot_recording_names_its_root_cause_first(inputs: list[str], cause: str, pattern: str,
                                                                scope: str, says: list[str], also: list[str]) -> None:
    result = analyze([str(TROUBLESHOOT / i) for i in inputs])
    assert result.errors == [] and result.hypotheses, result.verdict
    top = result.hypotheses[0]
    assert (top.pattern, top.scope, top.ongoing) == (cause, scope, True), \
        [(c.pattern, c.scope, c.ongoing) for c in result.hypotheses]
    assert pattern in top.patterns and all(word in top.message for word in says), top.message
    assert set(also) <= {c.pattern for c in result.hypotheses[1:]}
    assert top.evidence and top.remediation


def test_several_incidents_at_once_and_a_truncated_file_beside_them(tmp_path: Path) -> None:
    """The namespace with several incidents, its pod list, and a file cut off mid-write: the cut
    file is named with the position where it broke, and the rest is still analysed. The hostPath
    mount still failing at the end comes first; the image pull and the GPU pods, whose Events
    stopped earlier, follow as resolved."""
    whole = (TROUBLESHOOT / "pods" / "message-oomkill-pod.json").read_bytes()
    cut = tmp_path / "pods-cut.json"
    cut.write_bytes(whole[: len(whole) // 2])  # inside its only pod: nothing whole to keep
    result = analyze([str(TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json"),
                      str(TROUBLESHOOT / "pods" / "message-container-creating-failed-mount.json"), str(cut)])
    assert len(result.errors) == 1 and str(cut) in result.errors[0], result.errors
    assert "line" in result.errors[0] or "char" in result.errors[0] or "position" in result.errors[0], result.errors
    assert result.events == 77
    top = result.hypotheses[0]
    assert (top.pattern, top.ongoing) == ("volume-mount", True) and "volume-mount-failure" in top.patterns
    assert top.scope == "Pod/message-container-creating-failed-mount/troubleshoot-copyfromhost-4m79m-psdjm"
    # the kubelet's timeout names the volume only in its list of unmounted ones: that name, not "?"
    assert "waits for volume host: Unable to attach or mount volumes" in top.message, top.message
    others = [c for c in result.hypotheses[1:] if "image-pull-failure" in c.patterns]
    assert others and not others[0].ongoing and others[0].scope.startswith(
        "Pod/message-container-creating-failed-mount/no-image-deployment-")
    assert result.verdict.startswith("most likely: volume-mount")


def test_a_lone_containercreating_pod_is_no_incident() -> None:
    """Its pod list alone says ContainerCreating and nothing about why: no hypothesis is invented."""
    result = analyze([str(TROUBLESHOOT / "pods" / "message-container-creating-failed-mount.json")])
    assert (result.events, result.errors, result.hypotheses) == (1, [], [])
    assert result.verdict.startswith("no incident found")


def test_the_report_of_a_real_recording_draws_each_cause_from_its_own_objects() -> None:
    """The incident page's picture on real data (app.report.picture; the browser tests open it): each root
    cause's resource is drawn as the root, on the node its pod ran on, and each evidence mark says where
    it was read."""
    from app.report.page import render_analysis
    from app.report.picture import picture

    result = analyze([str(TROUBLESHOOT)])
    assert result.hypotheses and result.topology
    for cause in result.hypotheses:
        drawn = picture(cause, result.topology)
        roles = {n.id: n.role for n in drawn.nodes}
        assert roles[cause.root] == "root", (cause.pattern, cause.root)
        marks = [m for lane in drawn.lanes for m in lane.marks if m.role != "predicted"]
        assert marks and all(m.source.startswith(str(TROUBLESHOOT)) for m in marks), cause.pattern
    top = result.hypotheses[0]
    assert ("RUNS_ON", top.root, "Node/minikube") in {(e.type, e.source, e.target) for e in picture(
        top, result.topology).edges}
    page = render_analysis(result)
    assert all(f'id="cause-{c.rank}"' in page for c in result.hypotheses)
