"""Context revelation latency on a large graph: 10,000 pods and 1,000,000 events.

    .venv/bin/python benchmarks/context.py                 # 10,000 pods, 1,000,000 events
    .venv/bin/python benchmarks/context.py --events 100000 # a quicker look

Starts its own FalkorDB, writes a cluster-shaped graph through the same GraphStore the sink
uses (nodes, deployments -> replica sets -> pods, ConfigMaps mounted by several deployments,
services selecting pods, ingresses routing to services, events spread over a day, chains of
CAUSED edges), then reveals the context of random events and prints p50/p99 of the whole
context and of each of its queries. The bar: p99 at most 200 ms for the whole context.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.stack import _terminate, start_falkordb  # noqa: E402
from core.events import K8sContext, KubernetesData, ObjectRef, SemanticContext, UnifiedEvent  # noqa: E402
from core.settings import GraphSettings  # noqa: E402
from topology import queries  # noqa: E402
from topology.context import reveal_context  # noqa: E402
from topology.graph import open_graph  # noqa: E402

T0 = datetime(2026, 11, 20, tzinfo=UTC)
REASONS = ["Scheduled", "Pulled", "Created", "Started", "BackOff", "Unhealthy", "Killing", "OOMKilling"]
TARGET_MS = 200.0


def pod_of(i: int, *, nodes: int) -> K8sContext:
    dep = i // 10
    return K8sContext(kind="Pod", name=f"web-{dep}-{i % 10}", namespace=f"ns-{dep % 20}", uid=f"pod-{i}",
                      node=f"node-{i % nodes}", labels={"app": f"web-{dep}"},
                      owner=ObjectRef(kind="ReplicaSet", name=f"web-{dep}-rs", uid=f"rs-{dep}"))


def make_events(start: int, count: int, *, pods: int, nodes: int) -> list[UnifiedEvent]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + count):
        p = rng.randrange(pods)
        reason = REASONS[i % len(REASONS)]
        out.append(UnifiedEvent(
            id=f"ev-{i:07d}", timestamp=T0 + timedelta(milliseconds=rng.randrange(86_400_000)), type="kubeapi",
            source="bench", semantic=SemanticContext(intent=reason.lower(), category="bench", narrative=reason),
            k8s=pod_of(p, nodes=nodes), kubernetes=KubernetesData(action="EVENT", reason=reason)))
    return out


async def build(graph, args: argparse.Namespace) -> None:
    deployments = args.pods // 10
    t = time.monotonic()
    written = 0
    for start in range(0, args.events, 100_000):
        batch = make_events(start, min(100_000, args.events - start), pods=args.pods, nodes=args.nodes)
        written += await graph.write_events(batch)
        print(f"  {written:,} events written ({written / (time.monotonic() - t):,.0f}/s)", flush=True)
    edges = {
        ("OWNS", "Deployment", "ReplicaSet"): [[f"dep-{d}", f"rs-{d}"] for d in range(deployments)],
        ("OWNS", "ReplicaSet", "Pod"): [[f"rs-{i // 10}", f"pod-{i}"] for i in range(args.pods)],
        ("RUNS_ON", "Pod", "Node"): [[f"pod-{i}", f"node-{i % args.nodes}"] for i in range(args.pods)],
        ("MOUNTS", "Pod", "ConfigMap"): [[f"pod-{i}", f"cm-{(i // 10) % (deployments // 2)}"] for i in range(args.pods)],
        ("SELECTS", "Service", "Pod"): [[f"svc-{i // 10}", f"pod-{i}"] for i in range(args.pods)],
        ("ROUTES_TO", "Ingress", "Service"): [[f"ing-{d // 5}", f"svc-{d}"] for d in range(deployments)],
    }
    for (relation, src, dst), rows in edges.items():
        for s in range(0, len(rows), 5000):
            await graph.execute(queries.link_objects(relation, src, dst),
                                rows=[[a, b, f"{a}-{relation}->{b}", {}] for a, b in rows[s:s + 5000]])
    rng = random.Random(11)
    chains = [[f"ev-{rng.randrange(args.events):07d}" for _ in range(4)] for _ in range(args.chains)]
    caused = [[a, b] for chain in chains for a, b in zip(chain, chain[1:], strict=False)]
    for s in range(0, len(caused), 5000):
        await graph.execute(queries.link_objects("CAUSED", "Event", "Event"),
                            rows=[[a, b, f"{a}-CAUSED->{b}", {}] for a, b in caused[s:s + 5000]])
    print(f"graph built in {time.monotonic() - t:.0f}s: {args.pods:,} pods on {args.nodes} nodes, "
          f"{deployments:,} deployments, {args.events:,} events, {len(caused):,} CAUSED edges")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace) -> int:
    server = start_falkordb(Path(tempfile.mkdtemp(prefix="tapio-ctx-")))
    graph = open_graph(GraphSettings(uri=f"falkordb://127.0.0.1:{server.port}", name="context", batch_size=1000))
    try:
        await graph.setup_schema()
        await build(graph, args)
        rng = random.Random(3)
        ids = [f"ev-{rng.randrange(args.events):07d}" for _ in range(args.samples)]
        per_query: dict[str, list[float]] = {}
        original = graph.query

        async def timed(q, **params):
            t = time.perf_counter()
            try:
                return await original(q, **params)
            finally:
                per_query.setdefault(q.name, []).append((time.perf_counter() - t) * 1000)

        graph.query = timed  # type: ignore[method-assign]
        totals, sizes = [], []
        for event_id in ids:
            t = time.perf_counter()
            ctx = await reveal_context(graph, event_id)
            totals.append((time.perf_counter() - t) * 1000)
            sizes.append(len(ctx.dependencies) + len(ctx.correlated) + len(ctx.owners))
        p99 = pct(totals, 0.99)
        print(f"\ncontext of {len(ids)} random events: p50 {pct(totals, 0.5):.1f} ms, p99 {p99:.1f} ms, "
              f"max {max(totals):.1f} ms (target p99 <= {TARGET_MS:.0f} ms: ratio {p99 / TARGET_MS:.2f}); "
              f"median {sorted(sizes)[len(sizes) // 2]} related items per context")
        for name, values in per_query.items():
            print(f"  {name:<22} p50 {pct(values, 0.5):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms")
        return 0 if p99 <= TARGET_MS else 1
    finally:
        await graph.close()
        _terminate(server.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--chains", type=int, default=10_000, help="CAUSED chains of 4 events")
    parser.add_argument("--samples", type=int, default=500)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
