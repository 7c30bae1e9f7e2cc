"""benchmarks/profiles.py: py-spy's collapsed stacks summarized by function, self and inclusive."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.profiles import parse_raw, summarize  # noqa: E402

RAW = """\
run (/v/lib/python3.11/site-packages/faust/agents/agent.py:10);take (agents/sink.py:120);write (topology/falkor.py:200);send (redis/connection.py:5) 30
run (/v/lib/python3.11/site-packages/faust/agents/agent.py:10);take (agents/sink.py:121);rows (topology/rows.py:40) 50
run (/v/lib/python3.11/site-packages/faust/agents/agent.py:10);enrich_stage (agents/enrich.py:300);decode (msgspec/__init__.py:1) 20
not a stack line
"""


def test_self_and_inclusive_shares_by_function_with_the_project_own_frames_only_inclusive() -> None:
    stacks = parse_raw(RAW)
    assert [n for _, n in stacks] == [30, 50, 20]
    lines = summarize(stacks)
    assert lines[0] == "profile: 100 busy samples; self (on the CPU in the function itself):"
    assert lines[1].split() == ["50.0", "%", "rows", "(topology/rows.py)"]
    inclusive = lines[lines.index("the project's functions, inclusive (with everything they call):") + 1:]
    # sink.take on two lines of one function: one entry, 80 %; the library's agent.run is not listed
    assert inclusive[0].split() == ["80.0", "%", "take", "(agents/sink.py)"]
    assert not any("faust/agents" in line for line in inclusive)


def test_no_samples_says_why_it_may_be() -> None:
    assert "ptrace" in summarize([])[0]
