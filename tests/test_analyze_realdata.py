"""`tapio analyze` on the real recordings in shared/realdata: each names its root cause first.

Each recording goes through the real isolated dataflow (about 25 s each). Expected answers come
from the recordings' own test cases (holmesgpt `test_case.yaml`), the troubleshoot analyzers the
files were recorded for, and the realdata README: an OOM-killed CrashLoopBackOff pod, an image
that cannot be pulled, a PVC whose StorageClass does not exist, an OpenShift install whose
transient failures all resolved (no ongoing incident), and the troubleshoot files (an OOM-killed
Job pod, a GPU pod no node can take, an init container whose command does not exist, an image
pull failure after a Job failure, and a namespace with several incidents where the hostPath
mount is the one still failing at the end).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.analyze import analyze
from app.stack import EmbeddedStack

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
HOLMES = REALDATA / "holmesgpt"
TROUBLESHOOT = REALDATA / "troubleshoot" / "pkg" / "analyze" / "files"


@pytest.mark.parametrize("inputs, now, pattern, scope", [
    (["test_investigate/01_oom_kill/kubectl_describe.txt"], None, "oom-kill-loop", None),
    (["test_ask_holmes/10_image_pull_backoff/kubectl_describe.txt"], None, "image-pull-failure",
     "owner:ReplicaSet/default/customer-relations-webapp-7c67c65579"),
    (["test_ask_holmes/24a_misconfigured_pvc_basic/kubectl_describe_persistentvolumeclaim_redis-standard-pvc_app-24a.txt",
      "test_ask_holmes/24a_misconfigured_pvc_basic/kubectl_describe_pod_redis-747ffc844f-f9ghd_app-24a.txt"],
     datetime(2024, 11, 26, 11, 40, tzinfo=timezone.utc), "pvc-provisioning-failure", None),
], ids=["oom-kill", "image-pull", "missing-storageclass"])
async def test_the_recording_names_its_root_cause_first(embedded: EmbeddedStack, inputs: list[str],
                                                        now: datetime | None, pattern: str, scope: str | None) -> None:
    result = await analyze(embedded.settings(), [str(HOLMES / i) for i in inputs], now=now)
    assert result.errors == [] and result.hypotheses, result.verdict
    top = result.hypotheses[0]
    assert top.pattern == pattern and top.ongoing, [(c.pattern, c.scope, c.ongoing) for c in result.hypotheses]
    if scope is not None:
        assert top.scope == scope
    assert result.verdict.startswith(f"most likely: {pattern}")
    assert all(ev.source.startswith(str(HOLMES)) for ev in top.evidence)  # each line names its file


async def test_an_install_whose_failures_resolved_is_no_ongoing_incident(embedded: EmbeddedStack) -> None:
    result = await analyze(embedded.settings(), [str(REALDATA / "must-gather-clean")])
    assert result.events == 813 and result.errors == []
    assert all(not c.ongoing for c in result.hypotheses)
    assert result.verdict.startswith(("no incident found", "no ongoing incident"))


@pytest.mark.parametrize("inputs, pattern, scope, also", [
    (["pods/message-oomkill-pod.json"], "job-oom-kill", "owner:Job/message-oomkill-pod/oom-kill-job3", []),
    (["pods/message-pending-pod-resources.json"], "unschedulable-pod",
     "owner:ReplicaSet/message-pending-pod-resources/pending-pod-resources-5fddcf7688", []),
    (["pods/message-pod-init-crashloop-backoff.json"], "container-cannot-start",
     "owner:Pod/message-pod-init-crashloop-backoff/init-demo2", []),
    # the Job failed an hour before the image pull started failing: ranked below it
    (["events/message-image-pull-fail.json"], "image-pull-failure",
     "owner:Deployment/message-image-pull-fail/no-image-deployment", ["job-backoff-limit"]),
], ids=["oom-killed-job-pod", "gpu-unschedulable", "init-command-not-found", "image-pull-after-job-failure"])
async def test_each_troubleshoot_recording_names_its_root_cause_first(
        embedded: EmbeddedStack, inputs: list[str], pattern: str, scope: str, also: list[str]) -> None:
    result = await analyze(embedded.settings(), [str(TROUBLESHOOT / i) for i in inputs])
    assert result.errors == [] and result.hypotheses, result.verdict
    top = result.hypotheses[0]
    assert (top.pattern, top.scope, top.ongoing) == (pattern, scope, True), \
        [(c.pattern, c.scope, c.ongoing) for c in result.hypotheses]
    assert set(also) <= {c.pattern for c in result.hypotheses[1:]}
    assert top.evidence and top.remediation


async def test_several_incidents_at_once_and_a_truncated_file_beside_them(embedded: EmbeddedStack,
                                                                           tmp_path: Path) -> None:
    """The namespace with several incidents, its pod list, and a file cut off mid-write: the cut
    file is named with the position where it broke, and the rest is still analysed. The hostPath
    mount still failing at the end comes first; the image pull and the GPU pods, whose Events
    stopped earlier, follow as resolved."""
    whole = (TROUBLESHOOT / "pods" / "message-oomkill-pod.json").read_bytes()
    cut = tmp_path / "pods-cut.json"
    cut.write_bytes(whole[: len(whole) // 2])  # inside its only pod: nothing whole to keep
    result = await analyze(embedded.settings(), [str(TROUBLESHOOT / "events" / "message-container-creating-failed-mount.json"),
                                                 str(TROUBLESHOOT / "pods" / "message-container-creating-failed-mount.json"),
                                                 str(cut)])
    assert len(result.errors) == 1 and str(cut) in result.errors[0], result.errors
    assert "line" in result.errors[0] or "char" in result.errors[0] or "position" in result.errors[0], result.errors
    assert result.events == 77
    top = result.hypotheses[0]
    assert (top.pattern, top.ongoing) == ("volume-mount-failure", True)
    assert top.scope == "object:Pod/message-container-creating-failed-mount/troubleshoot-copyfromhost-4m79m-psdjm"
    others = {(c.pattern, c.scope) for c in result.hypotheses[1:]}
    assert ("image-pull-failure", "owner:Deployment/message-container-creating-failed-mount/no-image-deployment") in others
    assert result.verdict.startswith("most likely: volume-mount-failure")


async def test_a_lone_containercreating_pod_is_no_incident(embedded: EmbeddedStack) -> None:
    """Its pod list alone says ContainerCreating and nothing about why: no hypothesis is invented."""
    result = await analyze(embedded.settings(), [str(TROUBLESHOOT / "pods" / "message-container-creating-failed-mount.json")])
    assert (result.events, result.errors, result.hypotheses) == (1, [], [])
    assert result.verdict.startswith("no incident found")
