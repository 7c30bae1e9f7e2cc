"""`--log-format` (app.log_format, core.log_context) in a process of its own (logging is process-wide): the
JSON lines carry the bound stage, partition and offset, a record's own extra wins, the text format stays
what a terminal shows. The worker's own JSON lines: tests/test_bad_input.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.log_format import logging_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import asyncio, logging, logging.config, sys
from app.log_format import logging_config
from core.log_context import bind
logging.config.dictConfig(logging_config(sys.argv[1], "INFO"))
log = logging.getLogger("tapio.test")

async def stage(name, partition):
    bind(stage=name, partition=partition, offset=7)
    log.info("handled %d events", 3)

async def main():
    await asyncio.gather(stage("windows", 2), stage("sink", 0))  # two tasks: each its own context
    log.warning("dead-lettered", extra={"stage": "enrich", "event_id": "ev-1"})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("failed")
asyncio.run(main())
"""


def _run(fmt: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, fmt], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_json_lines_say_where_each_record_comes_from() -> None:
    lines = _run("json")
    records = [json.loads(line) for line in lines]  # one JSON object a line, the traceback inside its record
    handled = {r["stage"]: r for r in records if r["message"] == "handled 3 events"}
    assert handled["windows"]["partition"] == 2 and handled["sink"]["partition"] == 0
    assert handled["windows"]["offset"] == 7 and handled["windows"]["level"] == "INFO"
    assert handled["windows"]["logger"] == "tapio.test" and handled["windows"]["time"]
    [dead] = [r for r in records if r["message"] == "dead-lettered"]
    assert (dead["stage"], dead["event_id"], dead["level"]) == ("enrich", "ev-1", "WARNING")
    assert "partition" not in dead  # bound in the stage tasks only
    [failed] = [r for r in records if r["message"] == "failed"]
    assert "ZeroDivisionError" in failed["exc_info"]


def test_text_lines_are_what_a_terminal_shows() -> None:
    lines = _run("text")
    assert any(line.endswith("INFO tapio.test: handled 3 events") for line in lines)
    assert not any(line.startswith("{") for line in lines)


def test_an_unknown_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logging_config("yaml", "INFO")
