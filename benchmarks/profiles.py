"""Where a process's CPU goes during a benchmark: py-spy sampling, summarized by function.

    with Profile(pid, out) as profile: ...run the load...
    print("\n".join(profile.summary()))

`py-spy record --format raw` writes one line per distinct stack, `frame;frame;...;frame count`,
outermost first. `summary` gives the functions with the most samples on the CPU themselves
(self) and the project's own functions with the most samples anywhere on the stack (inclusive):
what a stage costs with everything it calls. Idle samples are left out (`--idle` is not passed),
so shares are of the time the process was busy; with `idle` they are of all the time, waits included
(where a process that keeps up poorly while its CPU is low spends its time).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType

#: frames of the project's own modules (the rest are libraries, under site-packages, and the interpreter)
OWN = re.compile(r"\((?:[^()]*/)?(?:agents|app|core|topology|collectors)/[^()/]*\)")


def _own(name: str) -> bool:
    return "site-packages/" not in name and "/lib/python" not in name and OWN.search(name) is not None


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """Pure: py-spy's raw (collapsed) stacks as (frames outermost first, samples)."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _name(frame: str) -> str:
    """`decode (msgspec/json.py:12)` -> `decode (msgspec/json.py)`: one entry per function, not per line."""
    return re.sub(r":\d+\)$", ")", frame.strip())


def summarize(stacks: list[tuple[list[str], int]], top: int = 20) -> list[str]:
    """Pure: lines of the self and inclusive tables, each with its share of the busy samples."""
    total = sum(n for _, n in stacks)
    if not total:
        return ["profile: no samples (was the process busy? py-spy needs ptrace: root or CAP_SYS_PTRACE)"]
    own_self: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        names = [_name(f) for f in frames]
        if names:
            own_self[names[-1]] += n
        for name in set(names):
            if _own(name):
                inclusive[name] += n
    lines = [f"profile: {total:,} busy samples; self (on the CPU in the function itself):"]
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own_self.most_common(top)]
    lines.append("the project's functions, inclusive (with everything they call):")
    lines += [f"  {100 * n / total:5.1f} %  {name}" for name, n in inclusive.most_common(top)]
    return lines


class Profile:
    """py-spy recording one process for the duration of a `with` block."""

    def __init__(self, pid: int, output: Path, *, rate: int = 100, idle: bool = False) -> None:
        self.output = output
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if spy is None:
            raise FileNotFoundError("py-spy is not installed: `make install` (it is in the test extra)")
        self.command = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
                        "--output", str(output), "--nonblocking", *(["--idle"] if idle else [])]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """Stop recording, if it started (py-spy writes its file then)."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if not self.output.exists():
            print(f"profile: py-spy wrote nothing: {err.decode(errors='replace')[-500:]}", file=sys.stderr)

    def summary(self, top: int = 20) -> list[str]:
        if not self.output.exists():
            return ["profile: none recorded"]
        return summarize(parse_raw(self.output.read_text(errors="replace")), top)
