"""`tapio analyze` on the real recordings in shared/realdata: each names its root cause first.

Each recording goes through the real isolated dataflow (about 25 s each). Expected answers come
from the recordings' own test cases (holmesgpt `test_case.yaml`) and README: an OOM-killed
CrashLoopBackOff pod, an image that cannot be pulled, a PVC whose StorageClass does not exist,
and an OpenShift install whose transient failures all resolved (no ongoing incident).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from app.analyze import analyze
from app.stack import EmbeddedStack

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
HOLMES = REALDATA / "holmesgpt"


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
