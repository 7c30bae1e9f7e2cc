"""Configuration layering and the embedded stack's errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from app.stack import EmbeddedStack, PortTaken, read_state, start_nats
from core.settings import ConfigError, load_settings


def test_file_then_environment_override(tmp_path: Path) -> None:
    config = tmp_path / "tapio.yaml"
    config.write_text("graph:\n  uri: neo4j://db.internal:7687\n  username: tapio\nkafka:\n  partitions: 12\n")
    settings = load_settings(config, environ={"TAPIO_STATE_DIR": str(tmp_path),
                                              "TAPIO_KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092",
                                              "TAPIO_GRAPH_PASSWORD": "s3cret", "TAPIO_KAFKA_COMPRESSION": "lz4"})
    assert settings.graph.uri == "neo4j://db.internal:7687" and settings.graph.username == "tapio"
    assert settings.graph.password == "s3cret" and settings.kafka.partitions == 12
    assert settings.kafka.bootstrap_servers == ["k1:9092", "k2:9092"]
    assert settings.kafka.compression_type == "lz4"  # the default is zstd
    assert load_settings(environ={"TAPIO_STATE_DIR": str(tmp_path), "TAPIO_KAFKA_COMPRESSION": "none"}
                         ).kafka.compression_type is None


def test_api_and_feedback_sections_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "tapio.yaml"
    config.write_text("api: {max_body_bytes: 1024}\nfeedback: {disable_below: 0.25}\n")
    settings = load_settings(config, environ={"TAPIO_STATE_DIR": str(tmp_path), "TAPIO_API_TOKEN": "s3cret",
                                              "TAPIO_FEEDBACK_MIN_FEEDBACK": "20"})
    assert (settings.api.token, settings.api.max_body_bytes) == ("s3cret", 1024)
    assert (settings.feedback.min_feedback, settings.feedback.disable_below, settings.feedback.prior_count) == (
        20, 0.25, 5.0)
    assert load_settings(environ={"TAPIO_STATE_DIR": str(tmp_path)}).api.token == ""  # writes off by default


def test_bad_configuration_names_the_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("kafka:\n  partitions: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*partitions"):
        load_settings(config, environ={"TAPIO_STATE_DIR": str(tmp_path)})
    config.write_text("kafka:\n  compression: brotli\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'brotli'.*kafka.compression"):
        load_settings(config, environ={"TAPIO_STATE_DIR": str(tmp_path)})
    config.write_text("graph:\n  url: typo\n")
    with pytest.raises(ConfigError, match="url"):
        load_settings(config, environ={"TAPIO_STATE_DIR": str(tmp_path)})


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortTaken, match=f"127.0.0.1:{port} for nats-server is taken"):
            start_nats(tmp_path, port)


def test_up_writes_endpoints_that_settings_read_and_down_stops(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path, bolt_port=None)
    settings = stack.start()
    try:
        state = read_state(tmp_path)
        assert [s.name for s in state.servers] == ["nats", "tansu", "falkordb"]
        loaded = load_settings(environ={"TAPIO_STATE_DIR": str(tmp_path)})
        assert loaded.nats.urls == settings.nats.urls and loaded.graph.uri == settings.graph.uri
        again = EmbeddedStack(tmp_path)
        assert again.start() == settings  # up on a stack that runs keeps it as it is
        assert (again.kept, again.restarted) == (["nats", "tansu", "falkordb"], [])
        assert [s.pid for s in read_state(tmp_path).servers] == [s.pid for s in state.servers]
    finally:
        stack.stop()
    for server in state.servers:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=0.5)
    assert not (tmp_path / "stack.yaml").exists()


def test_bridge_with_kafka_down_says_which_server_to_start(tmp_path: Path) -> None:
    """`tapio bridge` with NATS up and Kafka unreachable: one line naming Kafka, exit 1, no traceback."""
    from click.testing import CliRunner

    from app.cli import cli
    from app.stack import _terminate

    nats = start_nats(tmp_path)
    try:
        (tmp_path / "c.yaml").write_text(f'kafka:\n  bootstrap_servers: ["127.0.0.1:1"]\n'
                                         f'nats:\n  urls: ["nats://127.0.0.1:{nats.port}"]\nstate_dir: "{tmp_path}"\n')
        result = CliRunner().invoke(cli, ["--config", str(tmp_path / "c.yaml"), "bridge"])
    finally:
        _terminate(nats.pid)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: cannot reach Kafka at ['127.0.0.1:1']" in result.output and "Traceback" not in result.output
