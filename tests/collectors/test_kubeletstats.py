"""The kubelet's stats read into samples and findings (`collectors.kubeletstats`), on what a real kubelet
served: `data/kubelet-1.20/` was recorded from the real 1.20 node of `tests/support/realcluster` (its
README says how). Pure."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from collectors.kubeletstats import (
    CFSPeriods,
    Judge,
    Thresholds,
    cfs_periods,
    container_id,
    container_samples,
    decode_pods,
    decode_summary,
    limits_by_container,
    node_samples,
    pleg_seconds_since_relist,
    psi_avg10,
    throttled_percent,
)

DATA = Path(__file__).parent / "data" / "kubelet-1.20"
FILL_ID = "03878f189301ef383906313ecd0805d6a31418090920e322fb16f1b384d466c0"


@pytest.fixture(scope="module")
def recorded() -> tuple:
    summary = decode_summary((DATA / "stats-summary.json").read_bytes())
    limits = limits_by_container(decode_pods((DATA / "pods.json").read_bytes()))
    return summary, limits


def test_a_container_near_its_limit_is_sampled_against_it_and_found_once(recorded: tuple) -> None:
    summary, limits = recorded
    assert limits[("rec", "filler", "fill")].memory_bytes == 64 * 2**20
    assert limits[("rec", "filler", "fill")].cpu_cores == 0.5
    assert limits[("rec", "filler", "fill")].container_id == FILL_ID
    samples = {s.container: s for s in container_samples(summary, limits, {FILL_ID: 40.0})}
    fill = samples["fill"]
    assert fill.values["memory.working_set_bytes"] == 61313024
    assert fill.values["memory.working_set_percent"] == pytest.approx(91.36, abs=0.01)
    assert fill.values["cpu.throttled_percent"] == 40.0 and fill.values["cpu.limit_cores"] == 0.5
    assert (fill.pod.namespace, fill.pod.name, fill.container_id) == ("rec", "filler", FILL_ID)
    assert "memory.working_set_percent" not in samples["idle"].values  # no limit
    judge = Judge()
    node = node_samples(summary, {}, None)
    findings = judge.findings(samples.values(), node)
    assert [(f.reason, f.container, f.severity) for f in findings] == [("MemoryNearLimit", "fill", "warning")]
    assert "91% of its memory limit (58Mi of 64Mi)" in findings[0].message
    assert judge.findings(samples.values(), node) == []  # still standing: not again


def test_the_node_signals_against_the_eviction_thresholds(recorded: tuple) -> None:
    summary, _ = recorded
    node = node_samples(summary, {"memory": psi_avg10("some avg10=1.50 avg60=0.00 avg300=0.00 total=603997\n"
                                                      "full avg10=12.00 avg60=0.00 avg300=0.00 total=42873\n")}, 3.2)
    v = node.values
    assert v["memory.available_bytes"] == 24206790656
    assert v["memory.usage_percent"] == pytest.approx(100 * 1069412352 / (24206790656 + 1069412352), abs=0.01)
    assert v["nodefs.available_percent"] == pytest.approx(24.34, abs=0.01)
    assert v["psi.memory.full_avg10"] == 12.0 and v["kubelet.pleg_seconds_since_relist"] == 3.2
    assert [f.reason for f in Judge().findings([], node)] == ["NodeMemoryStall"]  # defaults: no eviction signal
    judge = Judge(Thresholds(memory_available_bytes=20e9, nodefs_available_percent=30.0, psi_full_percent=50))
    found = {f.reason: f for f in judge.findings([], node)}
    assert found["NodeMemoryPressure"].severity == "warning"  # 24.2 GB < 1.5 x 20 GB
    assert found["NodeDiskPressure"].severity == "error"  # 24% < 30%
    assert "nodefs.available 24.3% is below the eviction threshold 30%" in found["NodeDiskPressure"].message
    assert judge.findings([], node) == []
    worse = node_samples(summary.__class__(node=msgspec.structs.replace(
        summary.node, memory=msgspec.structs.replace(summary.node.memory, available_bytes=int(10e9)))), {}, None)
    assert [(f.reason, f.severity) for f in judge.findings([], worse)] == [("NodeMemoryPressure", "error")]


def test_cadvisor_cfs_counters_give_throttling_and_metrics_give_the_pleg_age() -> None:
    periods = cfs_periods((DATA / "metrics-cadvisor.txt").read_text())
    assert periods[FILL_ID] == CFSPeriods(periods=5, throttled=2)
    assert throttled_percent(None, periods[FILL_ID]) is None
    assert throttled_percent(CFSPeriods(1, 0), periods[FILL_ID]) == 50.0
    assert throttled_percent(periods[FILL_ID], periods[FILL_ID]) is None
    text = (DATA / "metrics.txt").read_text()
    assert pleg_seconds_since_relist(text, 1796442235.0) == pytest.approx(5.0, abs=1.0)


def test_container_ids_are_read_from_runtime_urls_and_cgroup_paths() -> None:
    assert container_id(f"containerd://{FILL_ID}") == FILL_ID
    assert container_id(f"/kubepods/burstable/pod1/cri-containerd-{FILL_ID}.scope") == FILL_ID
    assert container_id("/process_api/1108bfdf5f3433542a3d1489fe06902a") == ""


def test_a_kubelet_without_pods_lists_none_and_is_not_unreadable() -> None:
    # the real 1.20 kubelet of a fresh node answers /pods with `"items": null`: the collector said it
    # could not poll the kubelet until the first pod came
    assert limits_by_container(decode_pods(b'{"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": null}')) == {}
