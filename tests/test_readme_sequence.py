"""The README's own sequence, as a new user types it in a fresh directory: `tapio up`, then
`tapio worker` (it must come up, not crash on a relative data dir), `tapio analyze` while that
stack runs (in-process, and with --dataflow on that stack: its isolated worker lives under the
state dir), then `tapio down`."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from waiting import until_sync

from app.stack import free_port

SCENARIO = Path(__file__).resolve().parents[1] / "patterns" / "scenarios" / "configmap-crashloop"


def _tapio(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPIO_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def _ready(port: int, worker: subprocess.Popen[str]) -> bool | str:
    """True once the worker answers /readyz with 200; "exited" if it stopped (no point waiting)."""
    if worker.poll() is not None:
        return "exited"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
        return answer.status == 200


def test_up_worker_analyze_down_from_a_fresh_directory(tmp_path: Path) -> None:
    up = _tapio(tmp_path, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        port = free_port()
        env = _env() | {"TAPIO_WORKER_WEB_PORT": str(port)}
        with open(tmp_path / "worker.log", "w") as log:
            worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=tmp_path, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            ready = until_sync(lambda: _ready(port, worker), timeout=90, ignoring=(OSError,),
                               what=lambda: "the worker to answer /readyz with 200; its log ends:\n"
                                            + (tmp_path / "worker.log").read_text()[-3000:])
            log_text = (tmp_path / "worker.log").read_text()
            assert ready is True, f"the worker did not become ready (exit {worker.poll()}):\n{log_text[-3000:]}"
            assert "Traceback" not in log_text
            # the worker's tables live under the state dir, found from any working directory
            assert (tmp_path / ".tapio" / "worker").is_dir()

            analyze = _tapio(tmp_path, "analyze", str(SCENARIO))  # in-process: the stack is not needed
            assert analyze.returncode == 0, analyze.stdout + analyze.stderr
            assert "Traceback" not in analyze.stderr
            assert analyze.stdout.startswith("most likely: config-drift")
            # through the dataflow it uses the stack `tapio up` started: its isolated worker lives in the state dir
            through = _tapio(tmp_path, "analyze", "--dataflow", str(SCENARIO))
            assert through.returncode == 0, through.stdout + through.stderr
            assert through.stdout.startswith("most likely: config-drift")
            assert (tmp_path / ".tapio" / "isolated").is_dir()
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    finally:
        down = _tapio(tmp_path, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (tmp_path / ".tapio" / "stack.yaml").exists()
