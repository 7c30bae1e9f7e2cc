"""Shared fixtures: one real embedded stack (nats-server, Tansu, FalkorDB) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.stack import EmbeddedStack
from core.settings import Settings

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedStack:
    stack = EmbeddedStack(tmp_path_factory.mktemp("stack"))
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def settings(embedded: EmbeddedStack) -> Settings:
    return embedded.settings()
