"""The API's bearer token: compared exactly, in constant time, nothing stripped; never in a file others can read."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from app.api import bearer_token_matches
from app.workers import ChildProcess
from core.settings import ConfigError, load_settings

TOKEN = "s3cr3t-api-token"


def test_only_the_exact_token_matches() -> None:
    assert bearer_token_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_token_matches(f"bearer {TOKEN}", TOKEN)  # the scheme is case-insensitive (RFC 9110)
    for header in (f"Bearer {TOKEN} ", f"Bearer  {TOKEN}", f"Bearer {TOKEN}\t", f"Bearer {TOKEN}\n",
                   f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", f"Bearer\t{TOKEN}", TOKEN,
                   "Bearer ", "", f"Bearer {TOKEN.upper()}", "Bearer s3cr3t-api-tok\udcffen"):
        assert not bearer_token_matches(header, TOKEN), repr(header)
    assert not bearer_token_matches("Bearer ", "")  # no token configured: nothing matches


def test_a_token_that_could_never_be_sent_is_a_configuration_error() -> None:
    # HTTP strips whitespace around a header value, so "tok " could never match: refused at load
    for bad in (f"{TOKEN} ", f" {TOKEN}", f"{TOKEN}\n"):
        with pytest.raises(ConfigError, match="api.token"):
            load_settings(environ={"TAPIO_API_TOKEN": bad})
    assert load_settings(environ={"TAPIO_API_TOKEN": TOKEN}).api.token == TOKEN


def test_a_child_process_config_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    settings = msgspec.structs.replace(settings, api=msgspec.structs.replace(settings.api, token=TOKEN))
    (tmp_path / "cli.config.yaml").write_text("old")  # there before, readable by all: its mode is set too
    (tmp_path / "cli.config.yaml").chmod(0o644)
    child = ChildProcess(settings, ["--help"], name="cli", log_dir=tmp_path)
    assert child.proc.wait(60) == 0
    assert stat.S_IMODE(child.config.stat().st_mode) == 0o600 and TOKEN in child.config.read_text()
