"""The pure parts of `tapio agent`: which collectors a run selects and how a missing one is explained
(app.node_registry), the health document and readiness (app.agent_health), the node's name and the
batch's trace context (app.agent), `tapio agent --check`. No server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from app.agent import node_name, stamped, tracer_for
from app.agent_health import CollectorStatus, health, problems, summary
from app.cli import cli
from app.node_registry import REGISTRY, CollectorUnavailable, UnknownCollector, build, load_class, registry_with, select
from collectors.node import node_event
from collectors.procfs import ProcfsCollector
from core.settings import AgentSettings, Settings, to_yaml

AT = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def test_the_registry_names_every_node_collector_by_module_and_class() -> None:
    assert set(REGISTRY) == {"procfs", "kernel", "dns", "cri", "etcd", "apiserver", "journald", "kubelet", "cni"}
    assert all(target == f"collectors.{name}:{target.rpartition(':')[2]}" for name, target in REGISTRY.items())
    assert REGISTRY["cri"] == "collectors.cri:CriCollector" and REGISTRY["journald"] == "collectors.journald:JournaldCollector"


def test_only_and_disable_select_in_registry_order_and_a_typo_is_refused() -> None:
    assert select(REGISTRY) == list(REGISTRY)
    assert select(REGISTRY, only=["dns", "procfs"]) == ["procfs", "dns"]
    assert select(REGISTRY, disable=["kernel", "dns"]) == ["procfs", "cri", "etcd", "apiserver", "journald", "kubelet", "cni"]
    assert select(REGISTRY, only=["dns", "procfs"], disable=["dns"]) == ["procfs"]
    with pytest.raises(UnknownCollector, match="unknown collector.s. kernal: the agent knows procfs, kernel"):
        select(REGISTRY, disable=["kernal"])


def test_a_site_adds_its_own_collector_by_module_and_class() -> None:
    mine = registry_with({"ghost": "site.ghost:GhostCollector"})
    assert list(mine)[-1] == "ghost" and select(mine, only=["ghost"]) == ["ghost"]
    with pytest.raises(UnknownCollector, match="agent.extra.ghost: 'site.ghost' is not 'module:Class'"):
        registry_with({"ghost": "site.ghost"})


def test_a_missing_module_class_or_library_makes_a_collector_unavailable_with_the_reason() -> None:
    with pytest.raises(CollectorUnavailable, match="module collectors.no_such_source is not in this build of tapio"):
        load_class("ghost", "collectors.no_such_source:GhostCollector")
    with pytest.raises(CollectorUnavailable, match="module collectors.procfs has no class GhostCollector"):
        load_class("ghost", "collectors.procfs:GhostCollector")
    with pytest.raises(CollectorUnavailable, match="needs 'tapio_library_that_is_not_installed', which is not installed"):
        load_class("lib", "missing_dependency_collector:MissingDependencyCollector")
    with pytest.raises(CollectorUnavailable, match="module failing_import_collector cannot be imported: OSError: libbcc"):
        load_class("kernel", "failing_import_collector:KernelCollector")
    assert load_class("procfs", REGISTRY["procfs"]) is ProcfsCollector


def test_a_collector_is_built_with_the_node_and_its_options_and_a_wrong_option_is_said() -> None:
    collector = build("procfs", REGISTRY["procfs"], node="n1", options={"interval_s": 0.5})
    assert isinstance(collector, ProcfsCollector) and (collector.node, collector.interval_s) == ("n1", 0.5)
    with pytest.raises(CollectorUnavailable, match=r"agent.options.procfs \{'intervall': 1\}"):
        build("procfs", REGISTRY["procfs"], node="n1", options={"intervall": 1})
    with pytest.raises(CollectorUnavailable, match="collectors.procfs:ProcfsCollector failed while being built: "
                                                   "ValueError: could not convert"):
        build("procfs", REGISTRY["procfs"], node="n1", options={"interval_s": "often"})


def test_the_node_is_the_flag_then_the_setting_then_node_name_then_the_hostname() -> None:
    env = {"NODE_NAME": "from-env"}
    assert node_name(flag="flag", configured="conf", environ=env, hostname="host") == "flag"
    assert node_name(flag=None, configured="conf", environ=env, hostname="host") == "conf"
    assert node_name(flag=None, configured="", environ=env, hostname="host") == "from-env"
    assert node_name(flag="", configured="", environ={}, hostname="host") == "host"


def test_a_batch_is_stamped_with_its_span_unless_the_collector_set_a_trace_of_its_own() -> None:
    args = dict(node="n", at=AT, reason="R", message="m", intent="observed", category="state", severity="info")
    ours, theirs = node_event("procfs", **args), node_event("procfs", **args, key="2")
    theirs = msgspec.structs.replace(theirs, trace_id="a" * 32, span_id="b" * 16)
    with tracer_for("n").start_as_current_span("batch") as span:
        context = span.get_span_context()
        trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    out = stamped([ours, theirs], trace_id=trace_id, span_id=span_id)
    assert (out[0].trace_id, out[0].span_id) == (trace_id, span_id) and len(trace_id) == 32 and int(trace_id, 16)
    assert (out[1].trace_id, out[1].span_id) == ("a" * 32, "b" * 16) and out[0].id == ours.id


def _statuses() -> list[CollectorStatus]:
    return [CollectorStatus(name="procfs", enabled=True, state="running", sent=12, batches=6, last_event_at=AT),
            CollectorStatus(name="dns", enabled=True, state="unavailable", reason="no CAP_NET_RAW"),
            CollectorStatus(name="kernel", enabled=False, state="disabled", reason="switched off")]


def test_health_lists_every_collector_and_is_degraded_but_ready_with_one_unavailable() -> None:
    doc = health("n1", _statuses(), jetstream="connected to 127.0.0.1:4222", jetstream_connected=True)
    assert (doc.node, doc.status, doc.ready, doc.problems) == ("n1", "degraded", True, [])
    assert [(c.name, c.state, c.reason) for c in doc.collectors] == [
        ("procfs", "running", ""), ("dns", "unavailable", "no CAP_NET_RAW"), ("kernel", "disabled", "switched off")]
    only_running = health("n1", _statuses()[::2], jetstream="x", jetstream_connected=True)
    assert only_running.status == "ok"  # a disabled collector is what was asked for


def test_not_ready_without_jetstream_with_a_crash_loop_or_with_nothing_running() -> None:
    running, dns, _ = _statuses()
    assert problems([running], jetstream_connected=False) == [
        "jetstream: not connected (the batches wait; see the agent's log)"]
    crashed = CollectorStatus(name="cri", enabled=True, state="crashed", restarts=3, last_error="EOFError: socket")
    assert problems([running, crashed], jetstream_connected=True) == ["cri: crashed (3 restart(s)): EOFError: socket"]
    assert problems([dns], jetstream_connected=True) == ["no collector is running: dns unavailable (no CAP_NET_RAW)"]


def test_the_stop_summary_says_what_each_collector_handed_over() -> None:
    running, dns, kernel = _statuses()
    assert summary(running) == ("procfs: 12 event(s) published in 6 batch(es), 0 unsent, 0 lost at the source, "
                                "0 restart(s)")
    assert summary(dns) == "dns: unavailable (no CAP_NET_RAW)" and summary(kernel) == "kernel: disabled (switched off)"


def test_agent_check_says_which_collectors_can_start_here_and_why_not(tmp_path: Path) -> None:
    settings = Settings(agent=AgentSettings(extra={"ghost": "collectors.ghost_source:GhostCollector"},
                                            options={"procfs": {"proc": str(tmp_path)}}))
    config = tmp_path / "config.yaml"
    config.write_text(to_yaml(settings))
    result = CliRunner().invoke(cli, ["--config", str(config), "agent", "--check", "--only", "procfs,ghost"], obj={})
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output  # none can start: an empty /proc, a missing module
    assert lines[0].startswith(f"procfs: unavailable: neither {tmp_path}/pressure/* (PSI: boot the kernel with psi=1")
    assert lines[1] == "kernel: disabled: switched off by --only/--disable or agent.only/agent.disable"
    assert lines[-1].startswith("ghost: unavailable: module collectors.ghost_source is not in this build of tapio")
    if Path("/proc/pressure/memory").exists():
        config.write_text(to_yaml(Settings()))
        real = CliRunner().invoke(cli, ["--config", str(config), "agent", "--check", "--only", "procfs"], obj={})
        assert (real.exit_code, real.output.splitlines()[0]) == (0, "procfs: available")
