"""Apply topology changes to the graph, batched and idempotent.

Fed by: the topology service (`app.topology_service`), with the TopologyChanges that
`topology.index.ObjectIndex` returns for a batch of object events. Feeds: the graph, through
the named queries `upsert_objects`, `placeholder_objects`, `link_objects`, `unlink_objects`,
`fold_alias`, `fold_alias_impacts` and `drop_placeholder` of `topology.queries`.

`coalesce` (pure) folds a sequence of changes into their net effect, so a batch costs one
statement per (query, label) instead of one per object, and an edge added then removed
within the batch is not written at all. Order of application: nodes, removed edges, added
edges, aliases (see `topology.relations`). Every statement MERGEs on keys, so applying the
same change twice leaves the graph as once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from topology import queries
from topology.graph import GraphStore
from topology.model import label_for
from topology.relations import Alias, Edge, ObjectNode, TopologyChange


def coalesce(changes: Sequence[TopologyChange]) -> TopologyChange:
    """Pure: the net effect of `changes` applied in order."""
    nodes: dict[str, tuple[str, ObjectNode]] = {}  # uid -> (state, node); state: upsert|deleted|placeholder
    added: dict[str, Edge] = {}
    removed: dict[str, Edge] = {}
    aliases: dict[str, Alias] = {}
    for change in changes:
        for node in change.placeholders:
            nodes.setdefault(node.uid, ("placeholder", node))
        for node in change.upsert:
            nodes[node.uid] = ("upsert", node)
        for node in change.deleted:
            nodes[node.uid] = ("deleted", node)
        for edge in change.remove_edges:
            added.pop(edge.id, None)
            removed[edge.id] = edge
        for edge in change.add_edges:
            removed.pop(edge.id, None)
            added[edge.id] = edge
        for alias in change.aliases:
            aliases[alias.synthetic_key] = alias
    by_state: dict[str, list[ObjectNode]] = defaultdict(list)
    for state, node in nodes.values():
        by_state[state].append(node)
    return TopologyChange(upsert=by_state["upsert"], placeholders=by_state["placeholder"],
                          deleted=by_state["deleted"], add_edges=list(added.values()),
                          remove_edges=list(removed.values()), aliases=list(aliases.values()))


def _node_props(node: ObjectNode, *, deleted: bool) -> dict:
    return {**node.props, "kind": node.kind, "name": node.name, "namespace": node.namespace or None,
            "deleted": deleted}


async def apply_changes(graph: GraphStore, changes: Sequence[TopologyChange]) -> TopologyChange:
    """Write the net effect of `changes`; returns it (for logs and tests)."""
    net = coalesce(changes)
    for query, nodes, deleted in ((queries.upsert_objects, net.upsert, False),
                                  (queries.upsert_objects, net.deleted, True),
                                  (queries.placeholder_objects, net.placeholders, False)):
        by_label: dict[str, list] = defaultdict(list)
        for node in nodes:
            by_label[label_for(node.kind)].append([node.uid, _node_props(node, deleted=deleted)])
        for label, rows in sorted(by_label.items()):
            await graph.execute(query(label), rows=rows)
    for query, edges, with_props in ((queries.unlink_objects, net.remove_edges, False),
                                     (queries.link_objects, net.add_edges, True)):
        by_kind: dict[tuple[str, str, str], list] = defaultdict(list)
        for edge in edges:
            row = [edge.src_key, edge.dst_key, edge.id] + ([dict(edge.props)] if with_props else [])
            by_kind[(edge.type, label_for(edge.src_kind), label_for(edge.dst_kind))].append(row)
        for (relation, src, dst), rows in sorted(by_kind.items()):
            await graph.execute(query(relation, src, dst), rows=rows)
    by_label_alias: dict[str, list] = defaultdict(list)
    for alias in net.aliases:
        by_label_alias[label_for(alias.kind)].append([alias.synthetic_key, alias.uid])
    for label, rows in sorted(by_label_alias.items()):
        await graph.execute(queries.fold_alias(label), rows=rows)
        await graph.execute(queries.fold_alias_impacts(label), rows=rows)
        await graph.execute(queries.drop_placeholder(label), rows=[[synthetic] for synthetic, _ in rows])
    return net

