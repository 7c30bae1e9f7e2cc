"""`tapio up / down / worker / bridge / demo`: the embedded stack and the processes of the dataflow.

Fed by: the command line (ports, state folder, stages). Feeds: `app.stack` (start and stop the
servers on loopback), `app.faust_app.run_worker` (one worker of the group), `app.bridge` (the
JetStream -> Kafka bridge alone) and `app.demo.run_demo` (all of it on a recorded incident).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from app.cli.settings import settings_of
from core.settings import state_dir_from_env


@click.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where servers keep data, logs and stack.yaml (default $TAPIO_STATE_DIR or .tapio).")
@click.option("--nats-port", default=0, help="0 picks a free port.")
@click.option("--kafka-port", default=0, help="0 picks a free port.")
@click.option("--graph-port", default=0, help="0 picks a free port.")
@click.option("--bolt-port", type=int, default=None,
              help="Also open FalkorDB's experimental Bolt listener (0 picks a port); off by default.")
def up(state_dir: str | None, nats_port: int, kafka_port: int, graph_port: int, bolt_port: int | None) -> None:
    """Start the embedded stack in the background and record its endpoints; on a stack that runs,
    restart what died (on its ports) and keep what runs."""
    from app.stack import EmbeddedStack, StackError

    stack = EmbeddedStack(state_dir or state_dir_from_env(), nats_port=nats_port, kafka_port=kafka_port,
                          graph_port=graph_port, bolt_port=bolt_port)
    try:
        settings = stack.start()
    except StackError as e:
        raise click.ClickException(str(e)) from e
    if stack.kept:
        restarted = f"restarted {', '.join(stack.restarted)}" if stack.restarted else "nothing had stopped"
        click.echo(f"embedded stack already up: kept {', '.join(stack.kept)}; {restarted}")
    click.echo(f"embedded stack up ({stack.state_file}):")
    click.echo(f"  nats   {settings.nats.urls[0]}")
    click.echo(f"  kafka  {settings.kafka.bootstrap_servers[0]}")
    click.echo(f"  graph  {settings.graph.uri}")
    if stack.bolt_uri():
        click.echo(f"  bolt   {stack.bolt_uri()}  (FalkorDB's experimental Bolt listener)")
    click.echo("stop it with `tapio down`")


@click.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None)
def down(state_dir: str | None) -> None:
    """Stop the embedded stack that `tapio up` started."""
    from app.stack import StackError, stop_from_state

    try:
        stopped = stop_from_state(state_dir or state_dir_from_env())
    except StackError as e:
        raise click.ClickException(str(e)) from e
    for server in stopped:
        click.echo(f"stopped {server.name} (pid {server.pid})")


@click.command()
@click.option("--bridge/--no-bridge", default=True, show_default=True,
              help="Also run the JetStream -> Kafka bridge in this process.")
@click.option("--stages", default=None,
              help="Comma-separated stages to run (enrich,normalize,match,predict,sink); default all.")
@click.pass_context
def worker(ctx: click.Context, bridge: bool, stages: str | None) -> None:
    """Run one worker of the group until interrupted."""
    import msgspec

    from app.faust_app import WorkerStartError, run_worker

    settings = settings_of(ctx)
    if stages:
        chosen = [s.strip() for s in stages.split(",") if s.strip()]
        settings = msgspec.structs.replace(settings, worker=msgspec.structs.replace(settings.worker, stages=chosen))
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    try:
        run_worker(settings, with_bridge=bridge, log_format=ctx.obj.get("log_format", "text"))
    except (WorkerStartError, ValueError) as e:
        raise click.ClickException(str(e)) from e


@click.command(name="bridge")
@click.pass_context
def bridge_cmd(ctx: click.Context) -> None:
    """Run the JetStream -> Kafka bridge alone until interrupted."""
    from app.bridge import BridgeError, run_alone

    try:
        asyncio.run(run_alone(settings_of(ctx)))
    except BridgeError as e:  # it says which server to check
        raise click.ClickException(str(e)) from e


@click.command()
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where the demo's own stack lives (default: a fresh temporary folder).")
@click.option("--scenario", type=click.Path(exists=True, file_okay=False), default=None,
              help="A folder of recordings to replay instead of the bundled ConfigMap incident.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the dataflow to drain.")
def demo(state_dir: str | None, scenario: str | None, timeout: float) -> None:
    """Start the embedded stack and a worker, replay an incident, and show what the graph knows."""
    from app.demo import run_demo

    code = run_demo(state_dir=Path(state_dir) if state_dir else None,
                    scenario=Path(scenario) if scenario else None, timeout=timeout, echo=click.echo)
    sys.exit(code)


COMMANDS = [up, down, worker, bridge_cmd, demo]
