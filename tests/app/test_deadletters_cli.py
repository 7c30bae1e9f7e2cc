"""`tapio deadletters` on the session's real JetStream: a line per dead letter, or one saying there are none."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import msgspec
from click.testing import CliRunner

from app.cli import cli
from app.jetstream import DeadLetterPublisher, connect, ensure_streams
from core.settings import Settings, to_yaml


def _isolated(settings: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    token = uuid.uuid4().hex[:8]
    nats = msgspec.structs.replace(settings.nats, stream=f"DLCLI{token}", subject_prefix=f"dlcli{token}",
                                   deadletter_stream=f"DLCLI{token}_DL", deadletter_prefix=f"dlcli{token}-dl")
    mine = msgspec.structs.replace(settings, nats=nats)
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(mine))
    return mine, path


def _run(path: Path) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), "deadletters"], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_no_dead_letters_says_so_and_where_it_looked(settings: Settings, tmp_path: Path) -> None:
    mine, path = _isolated(settings, tmp_path)
    out = _run(path)
    assert out.count("\n") == 1 and out.startswith("no dead letters")
    assert mine.nats.deadletter_stream in out and mine.nats.urls[0] in out

    async def reject() -> None:
        nc = await connect(mine.nats, name="test-dl-cli")
        try:
            js = nc.jetstream()
            await ensure_streams(js, mine.nats)
            await DeadLetterPublisher(js, mine.nats).send(stage="enrich", reason="payload is not JSON",
                                                          where="raw[0]@7", payload=b"{")
        finally:
            await nc.drain()
    asyncio.run(reject())
    [line] = _run(path).splitlines()
    assert line.endswith("[enrich] raw[0]@7: payload is not JSON")
