"""The graph store the topology tests write to: a graph of its own per test on the session's
real FalkorDB, its schema set up, cleared afterwards (test_graph.py has its own, per backend)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from core.settings import Settings
from topology.graph import GraphStore, open_graph


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[GraphStore]:
    graph = open_graph(msgspec.structs.replace(settings.graph, name=f"topology_{uuid.uuid4().hex[:10]}"))
    await graph.setup_schema()
    yield graph
    await graph.clear()
    await graph.close()
