"""Every Cypher text of the project, as named, parameterized queries (those of pattern matches
and predictions are in `topology.insight_queries`, under the same rules).

Fed by: `topology.model` (labels, keys, relationship names) and the row layouts of
`topology.rows`. Feeds: the graph backends (`topology.falkor`, `topology.neo4j_store`) and
every reader of the graph (demo, tests, benchmarks), which call
`GraphStore.query(q, **params)` with one of the `Query` values below.

Rules:
- One dialect that FalkorDB 4.16 and Neo4j 5 both accept: no `EXISTS { }` subqueries,
  no `IF NOT EXISTS` outside the Neo4j schema list, no map-valued properties.
- Labels cannot be Cypher parameters, so per-label texts are generated here from the model's
  fixed label list, never from user strings; an unknown kind maps to `Resource`.
- Values always travel as parameters (`$rows`, `$ids`, `$namespace`...); write rows are
  positional lists whose layout `topology.rows` declares.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from topology.model import (
    AFFECTED,
    ALL_RESOURCE_LABELS,
    CAUSED,
    DEPENDENCY_RELATIONS,
    EVENT_KEY,
    EVENT_LABEL,
    GENERIC_LABEL,
    IMPACTS,
    JOINED_BY_NAME,
    NODE_KEYS,
    PRECEDED,
    PREDICTION_LABEL,
    RESOURCE_KEY,
    SECONDARY_INDEXES,
    TOPOLOGY_RELATIONS,
    label_for,
)
from topology.rows import EventRow, ResourceRow


class Query(NamedTuple):
    name: str
    text: str


# --- writes -----------------------------------------------------------------------------
# Positions come from the row Structs' field order (`row[i]`, `ev[i]`), see topology.rows.

_EV = EventRow.__struct_fields__
_RES = ResourceRow.__struct_fields__
_EVENT_PROPS = "{" + ", ".join(f"{name}: ev[{i}]" for i, name in enumerate(_EV)) + "}"
_RES_SET = ",\n    ".join(
    f"r.{name} = row[{i}]" if name in ("last_seen", "kind") else f"r.{name} = coalesce(row[{i}], r.{name})"
    for i, name in enumerate(_RES) if name not in (RESOURCE_KEY, "events"))


def _create_missing_event(carry: str) -> str:
    # An Event is immutable once written: create it (props inline) only when its id is new.
    # FalkorDB: MERGE + SET costs ~2x this, because a SET re-indexes the new node.
    return f"""OPTIONAL MATCH (known:{EVENT_LABEL} {{{EVENT_KEY}: ev[{_EV.index(EVENT_KEY)}]}})
WITH {carry}ev, known WHERE known IS NULL
CREATE (e:{EVENT_LABEL} {_EVENT_PROPS})"""


def _write_resource_events(label: str) -> Query:
    return Query(f"write_events:{label}", f"""UNWIND $rows AS row
{_write_to_resource(label, f"row[{_RES.index(RESOURCE_KEY)}]")}""")


def _write_to_resource(label: str, key: str) -> str:
    # Props are replaced only by a row at least as recent as the node (last_seen), and never
    # by a null, so a replay or a late, older event never moves the resource backwards.
    # An event is created with its AFFECTED edge in the same statement.
    return f"""MERGE (r:{label} {{{RESOURCE_KEY}: {key}}})
WITH r, row, coalesce(r.last_seen, -1) <= row[{_RES.index("last_seen")}] AS newer
FOREACH (ignored IN CASE WHEN newer THEN [1] ELSE [] END |
    SET {_RES_SET})
WITH r, row
UNWIND row[{_RES.index("events")}] AS ev
{_create_missing_event("r, ")}-[:{AFFECTED}]->(r)"""


#: label -> the query writing `$rows` (list of `topology.rows.ResourceRow`) of that label.
WRITE_RESOURCE_EVENTS: dict[str, Query] = {label: _write_resource_events(label)
                                           for label in ALL_RESOURCE_LABELS}


def _write_resource_events_by_name(label: str) -> Query:
    # A row keyed `kind:namespace/name` writes to the real node of that name when there is one (a live
    # one first), else to the synthetic node, which the topology service folds into the real one later.
    uid, name, ns = (_RES.index(f) for f in (RESOURCE_KEY, "name", "namespace"))
    return Query(f"write_events_by_name:{label}", f"""UNWIND $rows AS row
OPTIONAL MATCH (named:{label}) WHERE named.name = row[{name}] AND named.{RESOURCE_KEY} <> row[{uid}]
    AND coalesce(named.namespace, '') = coalesce(row[{ns}], '')
WITH row, collect(named) AS named
WITH row, [n IN named WHERE NOT coalesce(n.deleted, false) | n.{RESOURCE_KEY}]
    + [n IN named | n.{RESOURCE_KEY}] AS uids
{_write_to_resource(label, f"coalesce(head(uids), row[{uid}])")}""")


#: label -> the query writing `$rows` of that label keyed by name (`topology.rows.WriteBatch.by_name`).
WRITE_RESOURCE_EVENTS_BY_NAME: dict[str, Query] = {label: _write_resource_events_by_name(label)
                                                   for label in sorted(JOINED_BY_NAME)}

#: `$events`: list of `topology.rows.EventRow` that have no Kubernetes object.
WRITE_EVENTS_WITHOUT_RESOURCE = Query("write_events:no_resource", f"""UNWIND $events AS ev
{_create_missing_event("")}""")

#: Delete every node and edge of the graph; indexes and constraints stay.
CLEAR = Query("clear", "MATCH (n) DETACH DELETE n")


# --- reads ------------------------------------------------------------------------------

def resource_match(label: str) -> str:
    """`MATCH (r:label)` of one resource by params `name`, `namespace` ("" if cluster-scoped) and,
    for the generic label only, `kind`."""
    # Cluster-scoped objects have no namespace property: they match namespace "".
    kind = " AND r.kind = $kind" if label == GENERIC_LABEL else ""
    return (f"MATCH (r:{label}) WHERE r.name = $name "
            f"AND coalesce(r.namespace, '') = $namespace{kind}")


def _events_for_resource(label: str) -> Query:
    # Start from the resource, then expand (FalkorDB's planner: 0.2 ms instead of 82 ms).
    return Query(f"events_for_resource:{label}", f"""{resource_match(label)}
WITH r MATCH (r)<-[:{AFFECTED}]-(e:{EVENT_LABEL})
RETURN e.id AS id, e.timestamp AS timestamp, e.type AS type, e.severity AS severity,
       e.reason AS reason, e.intent AS intent, e.narrative AS narrative
ORDER BY timestamp, id""")


def _resource(label: str) -> Query:
    return Query(f"resource:{label}", f"""{resource_match(label)}
RETURN labels(r)[0] AS label, r.uid AS uid, properties(r) AS props
ORDER BY uid""")


_EVENTS_FOR_RESOURCE = {label: _events_for_resource(label) for label in ALL_RESOURCE_LABELS}
_RESOURCE = {label: _resource(label) for label in ALL_RESOURCE_LABELS}


def events_for_resource(kind: str) -> Query:
    """Events affecting one resource. Params: `namespace` ("" if cluster-scoped), `name`, and
    `kind` (read only for kinds outside the model, which share the `Resource` label).

    Rows: id, timestamp (epoch ms), type, severity, reason, intent, narrative; oldest first.
    """
    return _EVENTS_FOR_RESOURCE[label_for(kind)]


def _inputs_of_resource(label: str) -> Query:
    return Query(f"inputs_of_resource:{label}", f"""{resource_match(label)}
WITH r MATCH (r)-[:OWNS*0..2]->(p:Pod)-[:MOUNTS|USES_SECRET]->(d)
WHERE labels(d)[0] IN ['ConfigMap', 'Secret']
RETURN DISTINCT labels(d)[0] AS label, d.name AS name, d.namespace AS namespace
ORDER BY label, name""")


_INPUTS_OF_RESOURCE = {label: _inputs_of_resource(label) for label in ALL_RESOURCE_LABELS}


def inputs_of_resource(kind: str) -> Query:
    """The ConfigMaps and Secrets the pods of one resource read (the pod itself, or a workload's pods
    through OWNS, down to a Deployment's ReplicaSets' pods). Params as `events_for_resource`.
    Rows: label, name, namespace."""
    return _INPUTS_OF_RESOURCE[label_for(kind)]


def resource(kind: str) -> Query:
    """One resource and its properties. Params as `events_for_resource`. Rows: label, uid, props."""
    return _RESOURCE[label_for(kind)]


#: Params `ids`. Row: n = how many of these ids exist as Event nodes.
COUNT_EVENTS = Query("count_events", f"""UNWIND $ids AS id
MATCH (e:{EVENT_LABEL} {{{EVENT_KEY}: id}})
RETURN count(e) AS n""")

#: Params `ids`. Row: n = how many AFFECTED edges leave the Events with these ids.
COUNT_AFFECTED = Query("count_affected", f"""UNWIND $ids AS id
MATCH (:{EVENT_LABEL} {{{EVENT_KEY}: id}})-[a:{AFFECTED}]->()
RETURN count(a) AS n""")

#: Params `namespace`. Rows: id of every Event in that namespace, sorted.
EVENT_IDS_IN_NAMESPACE = Query("event_ids_in_namespace", f"""MATCH (e:{EVENT_LABEL})
WHERE e.namespace = $namespace
RETURN e.id AS id ORDER BY id""")

#: Params `namespace`. Rows per resource: kind, name, uid, node, events, last_reason,
#: last_intent (the newest event's), warnings.
#: A warning is a Kubernetes Warning event or severity warning/error/critical.
NAMESPACE_SUMMARY = Query("namespace_summary", f"""MATCH (e:{EVENT_LABEL})-[:{AFFECTED}]->(r)
WHERE r.namespace = $namespace
WITH r, e ORDER BY e.timestamp, e.id
WITH r, count(e) AS events, collect(e.reason) AS reasons, collect(e.intent) AS intents,
     count(CASE WHEN e.event_type = 'Warning'
                  OR e.severity IN ['warning', 'error', 'critical'] THEN 1 END) AS warnings
RETURN r.kind AS kind, r.name AS name, r.uid AS uid, r.node AS node, events,
       reasons[size(reasons) - 1] AS last_reason, intents[size(intents) - 1] AS last_intent, warnings
ORDER BY kind, name, uid""")

#: Rows: id of every Event node.
ALL_EVENT_IDS = Query("all_event_ids", f"MATCH (e:{EVENT_LABEL}) RETURN e.id AS id ORDER BY id")

#: Rows: label, uid of every resource node (every node keyed by uid).
ALL_RESOURCES = Query("all_resources", f"""MATCH (r) WHERE r.{RESOURCE_KEY} IS NOT NULL
RETURN labels(r)[0] AS label, r.{RESOURCE_KEY} AS uid ORDER BY label, uid""")

#: Rows: event (id), uid (resource) of every AFFECTED edge.
ALL_AFFECTED = Query("all_affected", f"""MATCH (e:{EVENT_LABEL})-[:{AFFECTED}]->(r)
RETURN e.id AS event, r.{RESOURCE_KEY} AS uid ORDER BY event, uid""")


# --- topology and context ---------------------------------------------------------------

def _check(relation: str | None, *labels: str) -> None:
    if relation is not None and relation not in TOPOLOGY_RELATIONS + (CAUSED, PRECEDED):
        raise ValueError(f"unknown relation {relation!r}")
    for label in labels:
        if label not in ALL_RESOURCE_LABELS + (EVENT_LABEL,):
            raise ValueError(f"unknown label {label!r}")


@cache
def upsert_objects(label: str) -> Query:
    """`$rows` of [uid, props map]: the object's node with its current props (replacing them)."""
    _check(None, label)
    return Query(f"upsert_objects:{label}", f"""UNWIND $rows AS row
MERGE (n:{label} {{{RESOURCE_KEY}: row[0]}})
SET n += row[1]""")


@cache
def placeholder_objects(label: str) -> Query:
    """`$rows` of [uid, props map]: a node for an object known only by name; props on creation only."""
    _check(None, label)
    return Query(f"placeholder_objects:{label}", f"""UNWIND $rows AS row
MERGE (n:{label} {{{RESOURCE_KEY}: row[0]}})
ON CREATE SET n += row[1]""")


@cache
def link_objects(relation: str, src_label: str, dst_label: str) -> Query:
    """`$rows` of [src key, dst key, edge id, props map]: MERGE both ends and the edge by its id.

    Keys are each label's key property (`uid` for resources, `id` for events); labels and
    relation come from the model's fixed vocabulary only (ValueError otherwise).
    """
    _check(relation, src_label, dst_label)
    src_key, dst_key = NODE_KEYS[src_label], NODE_KEYS[dst_label]
    return Query(f"link_objects:{src_label}-{relation}->{dst_label}", f"""UNWIND $rows AS row
MERGE (a:{src_label} {{{src_key}: row[0]}})
MERGE (b:{dst_label} {{{dst_key}: row[1]}})
MERGE (a)-[r:{relation} {{id: row[2]}}]->(b)
SET r += row[3]""")


@cache
def unlink_objects(relation: str, src_label: str, dst_label: str) -> Query:
    """`$rows` of [src uid, dst uid, edge id]: delete that edge if it is there."""
    _check(relation, src_label, dst_label)
    return Query(f"unlink_objects:{src_label}-{relation}->{dst_label}", f"""UNWIND $rows AS row
MATCH (a:{src_label} {{{RESOURCE_KEY}: row[0]}})
      -[r:{relation} {{id: row[2]}}]->(b:{dst_label} {{{RESOURCE_KEY}: row[1]}})
DELETE r""")


@cache
def fold_alias(label: str) -> Query:
    """`$rows` of [synthetic key, uid]: events of the placeholder move to the real node."""
    _check(None, label)
    return Query(f"fold_alias:{label}", f"""UNWIND $rows AS row
MATCH (s:{label} {{{RESOURCE_KEY}: row[0]}})<-[:{AFFECTED}]-(e:{EVENT_LABEL})
MATCH (n:{label} {{{RESOURCE_KEY}: row[1]}})
MERGE (e)-[:{AFFECTED}]->(n)""")


@cache
def fold_alias_impacts(label: str) -> Query:
    """`$rows` of [synthetic key, uid]: predictions impacting the placeholder impact the real node."""
    _check(None, label)
    return Query(f"fold_alias_impacts:{label}", f"""UNWIND $rows AS row
MATCH (s:{label} {{{RESOURCE_KEY}: row[0]}})<-[:{IMPACTS}]-(p:{PREDICTION_LABEL})
MATCH (n:{label} {{{RESOURCE_KEY}: row[1]}})
MERGE (p)-[:{IMPACTS}]->(n)""")


@cache
def drop_placeholder(label: str) -> Query:
    """`$rows` of [synthetic key]: delete the placeholder node and what still hangs on it."""
    _check(None, label)
    return Query(f"drop_placeholder:{label}", f"""UNWIND $rows AS row
MATCH (s:{label} {{{RESOURCE_KEY}: row[0]}})
DETACH DELETE s""")


#: Rows: type, src (uid), dst (uid), id of every topology edge.
ALL_TOPOLOGY_EDGES = Query("all_topology_edges", f"""MATCH (a)-[r:{"|".join(TOPOLOGY_RELATIONS)}]->(b)
RETURN type(r) AS type, a.{RESOURCE_KEY} AS src, b.{RESOURCE_KEY} AS dst, r.id AS id
ORDER BY id""")

_DEPENDS = "|".join(DEPENDENCY_RELATIONS)
_TOPOLOGY = "|".join(TOPOLOGY_RELATIONS)
_ANCHOR = f"MATCH (e:{EVENT_LABEL} {{{EVENT_KEY}: $id}})"
_EVENT_COLUMNS = ("{v}.id AS id, {v}.timestamp AS timestamp, {v}.reason AS reason, {v}.intent AS intent, "
                  "{v}.severity AS severity, {v}.narrative AS narrative, {v}.action AS action")

#: Params `id`. Rows: the event, and each resource it affects (label, uid, name, namespace, node).
CONTEXT_EVENT = Query("context_event", f"""{_ANCHOR}
OPTIONAL MATCH (e)-[:{AFFECTED}]->(r)
RETURN {_EVENT_COLUMNS.format(v="e")},
       labels(r)[0] AS label, r.uid AS uid, r.name AS name, r.namespace AS namespace, r.node AS node,
       r.restart_count AS restarts""")

#: Params `id`. Rows: the owners of the affected resources, nearest first (depth 1 = direct owner).
CONTEXT_OWNERS = Query("context_owners", f"""{_ANCHOR}-[:{AFFECTED}]->(r)
MATCH p = (o)-[:OWNS*1..4]->(r)
RETURN labels(o)[0] AS label, o.uid AS uid, o.name AS name, o.namespace AS namespace,
       min(length(p)) AS depth
ORDER BY depth, label, name""")

#: Params `id`, `limit`. Rows: resources within 3 hops of the affected ones through
#: dependency relations (mounts, selectors, claims, routes...), nearest first.
CONTEXT_DEPENDENCIES = Query("context_dependencies", f"""{_ANCHOR}-[:{AFFECTED}]->(r)
MATCH p = (r)-[:{_DEPENDS}*1..3]-(d)
WHERE d <> r
RETURN labels(d)[0] AS label, d.uid AS uid, d.name AS name, d.namespace AS namespace, d.node AS node,
       d.restart_count AS restarts, min(length(p)) AS hops
ORDER BY hops, label, name
LIMIT $limit""")

#: Params `id`, `window_ms`, `limit`. Rows: other events within the window that affect the same
#: resources or a resource one topology hop away (its ConfigMap, its node, its service...).
CONTEXT_TEMPORAL = Query("context_temporal", f"""{_ANCHOR}-[:{AFFECTED}]->(r)
WITH e, r
MATCH (r)-[:{_TOPOLOGY}*0..1]-(x)
WITH DISTINCT e, x
MATCH (x)<-[:{AFFECTED}]-(t:{EVENT_LABEL})
WHERE t.timestamp >= e.timestamp - $window_ms AND t.timestamp <= e.timestamp + $window_ms
  AND t.id <> e.id
RETURN DISTINCT {_EVENT_COLUMNS.format(v="t")}, labels(x)[0] AS label, x.name AS name
ORDER BY timestamp, id
LIMIT $limit""")

#: Params `id`, `intents`, `routine`, `lookback_ms`, `lookahead_ms`, `limit`. Rows: changes (events whose
#: intent is one of `intents`: config edits, rollouts) on the affected resources or anything within 2 hops
#: of them through dependencies or ownership, from `lookback_ms` before the event to `lookahead_ms` after
#: it (a revert that ended the failure comes after its last event), newest first. An
#: observation whose action is one of `routine` (MODIFIED, SNAPSHOT) is not a change: a controller's
#: status write looks the same; a real edit is the CHANGE event the topology service records.
CONTEXT_RECENT_CHANGES = Query("context_recent_changes", f"""{_ANCHOR}-[:{AFFECTED}]->(r)
WITH e, r
MATCH (r)-[:{_DEPENDS}|OWNS*0..2]-(x)
WITH DISTINCT e, x
MATCH (x)<-[:{AFFECTED}]-(c:{EVENT_LABEL})
WHERE c.intent IN $intents AND c.timestamp <= e.timestamp + $lookahead_ms
  AND c.timestamp >= e.timestamp - $lookback_ms AND (c.action IS NULL OR NOT c.action IN $routine)
RETURN DISTINCT {_EVENT_COLUMNS.format(v="c")}, labels(x)[0] AS label, x.name AS name
ORDER BY timestamp DESC, id
LIMIT $limit""")

#: Params `id`, `window_ms`. Rows (at most 1): the newest earlier event with the same reason on the
#: same resource or a sibling (same owner), before the correlation window: a previous occurrence.
CONTEXT_PREVIOUS = Query("context_previous", f"""{_ANCHOR}-[:{AFFECTED}]->(r)
WITH e, r
MATCH (r)<-[:OWNS*0..1]-(o)-[:OWNS*0..1]->(s)
WITH DISTINCT e, s
MATCH (s)<-[:{AFFECTED}]-(p:{EVENT_LABEL})
WHERE p.reason = e.reason AND p.timestamp < e.timestamp - $window_ms
RETURN {_EVENT_COLUMNS.format(v="p")}, labels(s)[0] AS label, s.name AS name
ORDER BY timestamp DESC, id
LIMIT 1""")

#: Params `id`. Rows: each chain of causes ending at the event, as event ids root first.
CONTEXT_CAUSES = Query("context_causes", f"""{_ANCHOR}
MATCH p = (root:{EVENT_LABEL})-[:{CAUSED}*1..10]->(e)
RETURN [n IN nodes(p) | n.id] AS chain
ORDER BY size(chain) DESC
LIMIT 5""")

#: Params `id`, `limit`. Rows: events the event caused, directly or not, nearest first.
CONTEXT_CONSEQUENCES = Query("context_consequences", f"""{_ANCHOR}
MATCH p = (e)-[:{CAUSED}*1..10]->(c:{EVENT_LABEL})
RETURN {_EVENT_COLUMNS.format(v="c")}, min(length(p)) AS depth
ORDER BY depth, timestamp
LIMIT $limit""")


# --- schema -----------------------------------------------------------------------------

class IndexSpec(NamedTuple):
    label: str
    property: str
    query: Query


#: FalkorDB: one range index per label on its key, and the model's secondary indexes. Creating
#: an existing index is an error there, so the backend first reads `FALKOR_LIST_INDEXES` and
#: runs only the missing ones.
FALKOR_INDEXES: tuple[IndexSpec, ...] = tuple(
    IndexSpec(label, key, Query(f"index:{label}.{key}", f"CREATE INDEX FOR (n:{label}) ON (n.{key})"))
    for label, key in (*NODE_KEYS.items(), *SECONDARY_INDEXES)
)
#: Rows: label, properties (list) of every index of the graph.
FALKOR_LIST_INDEXES = Query("list_indexes",
                            "CALL db.indexes() YIELD label, properties RETURN label, properties")

#: Neo4j 5: one uniqueness constraint per label on its key (it brings its own index), then the
#: secondary indexes.
NEO4J_SCHEMA: tuple[Query, ...] = tuple(
    Query(f"constraint:{label}.{key}",
          f"CREATE CONSTRAINT tapio_{label.lower()}_{key} IF NOT EXISTS "
          f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE")
    for label, key in NODE_KEYS.items()
) + tuple(
    Query(f"index:{label}.{prop}",
          f"CREATE INDEX tapio_{label.lower()}_{prop} IF NOT EXISTS FOR (n:{label}) ON (n.{prop})")
    for label, prop in SECONDARY_INDEXES
)


# --- benchmarks and operations ---------------------------------------------------------

#: Row: n = the number of Event nodes in the graph.
COUNT_ALL_EVENTS = Query("count_all_events", f"MATCH (e:{EVENT_LABEL}) RETURN count(e) AS n")

#: Params `since` (epoch ms). Rows: id, at (the prediction's event time, epoch ms) of the Prediction nodes
#: of that time or later (the benchmark's publish -> prediction latency).
PREDICTIONS_SINCE = Query("predictions_since", f"""MATCH (pr:{PREDICTION_LABEL}) WHERE pr.at >= $since
RETURN pr.id AS id, pr.at AS at""")

#: Row: n = the number of Prediction nodes in the graph.
COUNT_PREDICTIONS = Query("count_predictions", f"MATCH (pr:{PREDICTION_LABEL}) RETURN count(pr) AS n")

#: Params `ids`. Rows: id, timestamp (event time, epoch ms), ingested_at (sink write time, epoch ms).
EVENT_TIMES = Query("event_times", f"""UNWIND $ids AS id
MATCH (e:{EVENT_LABEL} {{{EVENT_KEY}: id}})
RETURN e.id AS id, e.timestamp AS timestamp, e.ingested_at AS ingested_at""")
