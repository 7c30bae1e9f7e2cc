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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` group: tests marked `xdist_group(name)` run on one xdist worker, in order.

    pytest-xdist 3.8 tells its scheduler a test's group by renaming the test `<nodeid>@<name>`
    through `item._nodeid`, which pytest 9 no longer reads (an item's id is `item._id`); without
    this, loadgroup spreads a group's tests like `--dist load`, and each worker that gets one
    starts the module's worker again. Runs on xdist workers only (`config.option.loadgroup`).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid:
            item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(names)}")
