"""Start `tapio worker` and `tapio bridge` as child processes with a given configuration.

Fed by: `tapio demo`, the test suite and the benchmarks. Feeds: running workers that read
their configuration from a YAML file written here (`TAPIO_CONFIG`), exactly as a deployed
worker reads its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from core.settings import Settings, to_yaml


class ChildProcess:
    """One `tapio` subcommand running as a child; stop() sends SIGTERM, kill() SIGKILL."""

    def __init__(self, settings: Settings, command: list[str], *, name: str, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.config = log_dir / f"{name}.config.yaml"
        _write_private(self.config, to_yaml(settings))  # it holds api.token and graph.password
        self.log_path = log_dir / f"{name}.log"
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAPIO_")}
        env["TAPIO_CONFIG"] = str(self.config)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", *command], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def _write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable by its owner only (from its creation on, and if it was there before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def start_worker(settings: Settings, *, name: str = "worker", with_bridge: bool = True,
                 log_dir: Path | None = None, stages: list[str] | None = None) -> ChildProcess:
    args = ["worker"] + ([] if with_bridge else ["--no-bridge"]) + (["--stages", ",".join(stages)] if stages else [])
    return ChildProcess(settings, args, name=name, log_dir=log_dir or Path(settings.state_dir) / "logs")


def start_bridge(settings: Settings, *, name: str = "bridge", log_dir: Path | None = None) -> ChildProcess:
    return ChildProcess(settings, ["bridge"], name=name, log_dir=log_dir or Path(settings.state_dir) / "logs")


def with_worker_port(settings: Settings, port: int, *, data_dir: str | None = None) -> Settings:
    worker = msgspec.structs.replace(settings.worker, web_port=port,
                                     data_dir=data_dir or settings.worker.data_dir)
    return msgspec.structs.replace(settings, worker=worker)
