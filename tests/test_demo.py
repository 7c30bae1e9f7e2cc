"""`tapio demo`, the first thing a person runs, as a user runs it: a subprocess, exit code 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_replays_the_configmap_incident_into_the_graph(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "app.cli", "demo", "--state-dir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "published 105 events from 5 files (0 parse errors)" in out
    assert "105/105 events in the graph" in out
    assert "pods run on 3 node(s): node-a, node-b, node-c" in out
    pods = [line for line in out.splitlines() if line.strip().startswith("Pod/nginx-")]
    assert len(pods) == 6 and all("BackOff" in line for line in pods)
    assert any(line.strip().startswith("ConfigMap/nginx-config") for line in out.splitlines())
    assert "$ tapio explain pod/nginx-7c9d8f6b5d-" in out
    assert "probable root cause:" in out and "ConfigMap shop/nginx-config: key nginx.conf modified" in out
    assert "6 pods on 3 nodes (node-a, node-b, node-c)" in out
    # the ranked hypotheses: the ConfigMap edit's pattern first, the pods' own diagnoses after it
    hypotheses = [line.strip() for line in out.splitlines() if line.strip()[:3] in {f"{n}. " for n in range(1, 10)}]
    assert hypotheses[0].startswith("1. [config-drift]"), hypotheses
    assert any("[diagnosis/probes]" in line for line in hypotheses), hypotheses
    # the demo stops what it started
    assert not (tmp_path / "demo" / "stack.yaml").exists()
