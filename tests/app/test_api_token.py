"""The API's bearer token check, pure: exact, constant-time, nothing stripped."""

from __future__ import annotations

import pytest

from app.api import bearer_token_matches
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
