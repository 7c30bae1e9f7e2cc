"""The Cypher of pattern matches and predictions, as named, parameterized queries.

Fed by: `topology.model` (labels, keys, relationship names) and the row layouts of
`topology.insight_rows`. Feeds: the graph backends' `write_insights`, and `topology.predictions`
(the ranked reads). Same rules as `topology.queries` (one dialect FalkorDB 4.16 and Neo4j 5 both
accept, labels generated from the model only, values always as parameters); kept apart from it
so each module holds one concern.

Graph written per match group (one row of `$groups`, see `topology.insight_rows`):

    (:Pattern {name, version, priority, last_matched})
    (e:Event)-[:MATCHES {match_id, scope, matched_at, window_start, count, boost}]->(p:Pattern)
    (p)-[:PREDICTED]->(pr:Prediction {id, match_id, pattern, ..., namespace, at, due, score})
    (pr)-[:IMPACTS]->(resource)       resource keyed like write_events keys it (uid, else Kind:ns/name)
    (cause:Event)-[:CAUSED]->(effect:Event), (cause)-[:PRECEDED {delay_s}]->(effect)

No half-written graph: a write is the evidence events first (the `write_events` statements,
each atomic), then ONE statement per chunk of groups that writes patterns, predictions and every
edge together. A FalkorDB statement is applied atomically, so a Prediction never exists without
its PREDICTED edge nor its IMPACTS edges, and a failure before it leaves only events (which a
retry skips). Neo4j runs the whole call in one transaction. Events are MATCHed, never MERGEd
here: a bare `(:Event {id})` would stop the real event from being written later (events are
write-once), so an event id neither in the evidence nor in the graph gets no edge.
"""

from __future__ import annotations

from functools import lru_cache

from topology.insight_rows import EventEdgeRow, ImpactRow, InsightGroupRow, PredictionRow, WithdrawnRow
from topology.model import (
    AFFECTED,
    ALL_RESOURCE_LABELS,
    CAUSED,
    EVENT_KEY,
    EVENT_LABEL,
    IMPACTS,
    MATCHES,
    PATTERN_KEY,
    PATTERN_LABEL,
    PRECEDED,
    PREDICTED,
    PREDICTION_KEY,
    PREDICTION_LABEL,
    RESOURCE_KEY,
    TOPOLOGY_RELATIONS,
)
from topology.queries import Query, resource_match

# --- writes -----------------------------------------------------------------------------

_G = InsightGroupRow.__struct_fields__
_P = PredictionRow.__struct_fields__
_I = ImpactRow.__struct_fields__
_E = EventEdgeRow.__struct_fields__


def _g(name: str) -> str:
    return f"g[{_G.index(name)}]"


_PREDICTION_SET = ",\n        ".join(f"pr.{name} = x[{i}]" for i, name in enumerate(_P)
                                      if name not in (PREDICTION_KEY, "impacts"))
# A prediction may arrive after a newer version of itself (a diagnosis updated in place on one
# partition and again on another, or resolved, or sent again by a restarted worker): the newest by
# coalesce(resolved_at, at) stays; of two at the same moment, the higher revision; of two of the same
# revision, the resolution.
_STORED, _SENT = "coalesce(pr.resolved_at, pr.at, -1)", f"coalesce(x[{_P.index('resolved_at')}], x[{_P.index('at')}])"
_STORED_REV, _SENT_REV = "coalesce(pr.revision, 0)", f"x[{_P.index('revision')}]"
_RESOLUTION = f"(x[{_P.index('resolved_at')}] IS NOT NULL OR pr.resolved_at IS NULL)"
_NOT_OLDER = (f"{_STORED} < {_SENT} OR ({_STORED} = {_SENT} AND ({_STORED_REV} < {_SENT_REV} OR "
              f"({_STORED_REV} = {_SENT_REV} AND {_RESOLUTION})))")
_MATCH_SET = ", ".join(f"m.{name} = {_g(name)}"
                       for name in ("scope", "matched_at", "window_start", "count", "boost", "provisional"))


def _impacts(label: str) -> str:
    # A resource not in the graph yet gets a placeholder, as an event's resource does: no
    # `last_seen`, so the next event or topology write fills in its properties.
    props = ", ".join(f"r.{name} = i[{_I.index(name)}]" for name in ("kind", "name", "namespace"))
    return f"""
        FOREACH (ignored IN CASE WHEN i[{_I.index("label")}] = '{label}' THEN [1] ELSE [] END |
            MERGE (r:{label} {{{RESOURCE_KEY}: i[{_I.index("uid")}]}}) ON CREATE SET {props}
            MERGE (pr)-[:{IMPACTS}]->(r))"""


@lru_cache(maxsize=1024)
def write_insights(labels: tuple[str, ...]) -> Query:
    """`$groups`: list of `topology.insight_rows.InsightGroupRow` whose IMPACTS edges point at
    resources of `labels` only (`insight_rows.labels_of`). Every write MERGEs on a key, so a
    replay leaves one copy of every node and edge. A provisional match (flagged on its MATCHES edges
    and predictions, the flag removed when its final version comes) does not move its Pattern's
    version, priority and last match: a withdrawn one leaves no trace on it.
    """
    unknown = set(labels) - set(ALL_RESOURCE_LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}")
    impacts = "".join(_impacts(label) for label in labels)
    impacts_part = f"""
    FOREACH (i IN x[{_P.index("impacts")}] |{impacts})""" if labels else ""
    return Query(f"write_insights:{','.join(labels) or '-'}", f"""UNWIND $groups AS g
MERGE (p:{PATTERN_LABEL} {{{PATTERN_KEY}: {_g("pattern")}}})
WITH p, g, coalesce(p.last_matched, -1) <= {_g("seen_at")} AND {_g("provisional")} IS NULL AS newer
FOREACH (ignored IN CASE WHEN newer THEN [1] ELSE [] END |
    SET p.version = {_g("version")}, p.priority = coalesce({_g("priority")}, p.priority),
        p.last_matched = {_g("seen_at")})
WITH p, g
FOREACH (x IN {_g("predictions")} |
    MERGE (pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: x[{_P.index(PREDICTION_KEY)}]}})
    FOREACH (ignored IN CASE WHEN {_NOT_OLDER} THEN [1] ELSE [] END |
        SET {_PREDICTION_SET})
    MERGE (p)-[:{PREDICTED}]->(pr){impacts_part})
WITH p, g
UNWIND {_g("edges")} AS x
MATCH (a:{EVENT_LABEL} {{{EVENT_KEY}: x[{_E.index("src")}]}})
OPTIONAL MATCH (b:{EVENT_LABEL} {{{EVENT_KEY}: x[{_E.index("effect")}]}})
FOREACH (ignored IN CASE WHEN x[{_E.index("effect")}] IS NULL THEN [1] ELSE [] END |
    MERGE (a)-[m:{MATCHES} {{match_id: {_g("match_id")}}}]->(p)
    SET {_MATCH_SET})
FOREACH (ignored IN CASE WHEN b IS NULL THEN [] ELSE [1] END |
    MERGE (a)-[:{CAUSED}]->(b)
    MERGE (a)-[d:{PRECEDED}]->(b)
    SET d.delay_s = x[{_E.index("delay_s")}])""")


_W = WithdrawnRow.__struct_fields__

#: `$rows`: list of `topology.insight_rows.WithdrawnRow`. A withdrawn provisional match's predictions
#: go, those still provisional only (a final version of the same id is never withdrawn: see
#: agents/windows.py), with their PREDICTED and IMPACTS edges. Written after the groups of its batch.
WITHDRAW_PREDICTIONS = Query("withdraw_predictions", f"""UNWIND $rows AS w
MATCH (pr:{PREDICTION_LABEL})
WHERE pr.match_id = w[{_W.index("match_id")}] AND pr.provisional = true
DETACH DELETE pr""")

#: `$rows` as WITHDRAW_PREDICTIONS: the withdrawn match's MATCHES edges (still provisional). Its
#: evidence events stay (they happened), and so do the CAUSED/PRECEDED edges between them.
WITHDRAW_MATCH_EDGES = Query("withdraw_match_edges", f"""UNWIND $rows AS w
MATCH (:{EVENT_LABEL})-[m:{MATCHES}]->(:{PATTERN_LABEL} {{{PATTERN_KEY}: w[{_W.index("pattern")}]}})
WHERE m.match_id = w[{_W.index("match_id")}] AND m.provisional = true
DELETE m""")

#: `$rows` as WITHDRAW_PREDICTIONS: a Pattern node only a withdrawn match made (no final match ever
#: set its `last_matched`, nothing points at it any more) goes too.
WITHDRAW_BARE_PATTERN = Query("withdraw_bare_pattern", f"""UNWIND $rows AS w
MATCH (p:{PATTERN_LABEL} {{{PATTERN_KEY}: w[{_W.index("pattern")}]}})
WHERE p.last_matched IS NULL AND NOT (p)--()
DELETE p""")

#: the withdrawal's statements, in order (predictions first: what a reader sees goes first)
WITHDRAW = (WITHDRAW_PREDICTIONS, WITHDRAW_MATCH_EDGES, WITHDRAW_BARE_PATTERN)


# --- reads ------------------------------------------------------------------------------

_COLUMNS = ", ".join(f"pr.{name} AS {name}" for name in _P if name != "impacts")
_IMPACTED = (f"OPTIONAL MATCH (pr)-[:{IMPACTS}]->(i)\n"
             "WITH pr, via, collect(CASE WHEN i IS NULL THEN null "
             "ELSE [i.kind, i.name, i.namespace, i.uid] END) AS impacted")
_RANKED = "ORDER BY score DESC, at DESC, id"

#: Params `namespace`, `pattern`, `since`, `until` (epoch ms, `since <= at < until`), each null
#: for no filter, and `limit`. Rows: every Prediction property (see PredictionRow), `impacted`
#: (list of [kind, name, namespace, uid]) and `via` ([]); best score first, then newest.
LIST_PREDICTIONS = Query("list_predictions", f"""MATCH (pr:{PREDICTION_LABEL})
WHERE ($namespace IS NULL OR pr.namespace = $namespace)
  AND ($pattern IS NULL OR pr.pattern = $pattern)
  AND ($since IS NULL OR pr.at >= $since)
  AND ($until IS NULL OR pr.at < $until)
WITH pr ORDER BY pr.score DESC, pr.at DESC, pr.id LIMIT $limit
WITH pr, [] AS via
{_IMPACTED}
RETURN {_COLUMNS}, impacted, via
{_RANKED}""")


#: Params `id`. Rows (0 or 1) as LIST_PREDICTIONS: one prediction by id.
PREDICTION_BY_ID = Query("prediction_by_id", f"""MATCH (pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: $id}})
WITH pr, [] AS via
{_IMPACTED}
RETURN {_COLUMNS}, impacted, via""")


def _hypotheses(label: str) -> Query:
    # Both ways a prediction fits a resource, collected per resource node (a name can sit on a
    # synthetic and a real node), then merged per prediction: `via` lists `impacts` (it names the
    # resource) and/or `evidence` (its match rests on an event affecting the resource).
    # Predictions of a match are found through the Prediction.match_id index.
    return Query(f"hypotheses_for:{label}", f"""{resource_match(label)}
OPTIONAL MATCH (r)<-[:{IMPACTS}]-(a:{PREDICTION_LABEL})
WITH r, collect(a.{PREDICTION_KEY}) AS direct
OPTIONAL MATCH (r)<-[:{AFFECTED}]-(:{EVENT_LABEL})-[m:{MATCHES}]->(:{PATTERN_LABEL})
WITH r, direct, collect(DISTINCT m.match_id) AS match_ids
OPTIONAL MATCH (b:{PREDICTION_LABEL}) WHERE b.match_id IN match_ids
WITH direct, collect(b.{PREDICTION_KEY}) AS indirect
UNWIND [x IN direct | [x, 'impacts']] + [x IN indirect | [x, 'evidence']] AS hit
WITH hit[0] AS pid, collect(DISTINCT hit[1]) AS via
MATCH (pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: pid}})
WITH pr, via ORDER BY pr.score DESC, pr.at DESC, pr.id LIMIT $limit
{_IMPACTED}
RETURN {_COLUMNS}, impacted, via
{_RANKED}""")


_HYPOTHESES = {label: _hypotheses(label) for label in ALL_RESOURCE_LABELS}

#: Params `scopes` (scope keys such as `owner:Deployment/shop/nginx`, `node:node-a`) and `limit`.
#: Rows as LIST_PREDICTIONS, `via` ['scope']: predictions about a scope a resource belongs to.
PREDICTIONS_IN_SCOPES = Query("predictions_in_scopes", f"""MATCH (pr:{PREDICTION_LABEL})
WHERE pr.scope IN $scopes
WITH pr, ['scope'] AS via ORDER BY pr.score DESC, pr.at DESC, pr.id LIMIT $limit
{_IMPACTED}
RETURN {_COLUMNS}, impacted, via
{_RANKED}""")


def hypotheses_for(label: str) -> Query:
    """Predictions fitting one resource of `label` (a model label, `Resource` for other kinds).
    Params as `topology.queries.events_for_resource`, and `limit`. Rows as `LIST_PREDICTIONS`,
    with `via`: `impacts` and/or `evidence`; best score first, then newest."""
    return _HYPOTHESES[label]


# --- inventories (tests, operations) -----------------------------------------------------

#: Rows: name, version, priority, last_matched of every Pattern.
ALL_PATTERNS = Query("all_patterns", f"""MATCH (p:{PATTERN_LABEL})
RETURN p.name AS name, p.version AS version, p.priority AS priority, p.last_matched AS last_matched
ORDER BY name""")

#: Rows: event, pattern, match_id, scope, matched_at, window_start, count, boost of every MATCHES edge.
ALL_MATCHES = Query("all_matches", f"""MATCH (e:{EVENT_LABEL})-[m:{MATCHES}]->(p:{PATTERN_LABEL})
RETURN e.id AS event, p.name AS pattern, m.match_id AS match_id, m.scope AS scope,
       m.matched_at AS matched_at, m.window_start AS window_start, m.count AS count, m.boost AS boost
ORDER BY match_id, event""")

#: Rows: match_id of every match still provisional (some MATCHES edge of it flagged).
PROVISIONAL_MATCH_IDS = Query("provisional_match_ids", f"""MATCH (:{EVENT_LABEL})-[m:{MATCHES}]->(:{PATTERN_LABEL})
WHERE m.provisional = true
RETURN DISTINCT m.match_id AS match_id""")

#: Params `match_id`. Rows: event, provisional (true, or null once final) of one match's MATCHES edges.
MATCH_EDGES = Query("match_edges", f"""MATCH (e:{EVENT_LABEL})-[m:{MATCHES}]->(:{PATTERN_LABEL})
WHERE m.match_id = $match_id
RETURN e.id AS event, m.provisional AS provisional
ORDER BY event""")

#: Rows: pattern, prediction (id) of every PREDICTED edge.
ALL_PREDICTED = Query("all_predicted", f"""MATCH (p:{PATTERN_LABEL})-[:{PREDICTED}]->(pr:{PREDICTION_LABEL})
RETURN p.name AS pattern, pr.id AS prediction ORDER BY pattern, prediction""")

#: Rows: prediction (id), label, uid of every IMPACTS edge.
ALL_IMPACTS = Query("all_impacts", f"""MATCH (pr:{PREDICTION_LABEL})-[:{IMPACTS}]->(r)
RETURN pr.id AS prediction, labels(r)[0] AS label, r.{RESOURCE_KEY} AS uid ORDER BY prediction, label, uid""")

#: Rows: type (CAUSED or PRECEDED), cause, effect (event ids), delay_s (PRECEDED only) of every
#: edge between events.
ALL_EVENT_LINKS = Query("all_event_links", f"""MATCH (a:{EVENT_LABEL})-[l:{CAUSED}|{PRECEDED}]->(b:{EVENT_LABEL})
RETURN type(l) AS type, a.id AS cause, b.id AS effect, l.delay_s AS delay_s ORDER BY type, cause, effect""")

#: Rows: n = the number of Prediction nodes.
COUNT_PREDICTIONS = Query("count_predictions", f"MATCH (pr:{PREDICTION_LABEL}) RETURN count(pr) AS n")


# --- one match's story (tapio analyze) ---------------------------------------------------

#: Params `match_id`. Rows: the events a match rests on, oldest first: id, timestamp (epoch ms),
#: source (file#position of a recording), narrative, severity, kind, namespace, name.
MATCH_EVENTS = Query("match_events", f"""MATCH (e:{EVENT_LABEL})-[m:{MATCHES}]->(:{PATTERN_LABEL})
WHERE m.match_id = $match_id
RETURN DISTINCT e.id AS id, e.timestamp AS timestamp, e.source AS source, e.narrative AS narrative,
       e.severity AS severity, e.kind AS kind, e.namespace AS namespace, e.name AS name, e.intent AS intent
ORDER BY timestamp, id""")

#: Params `ids` (event ids). Rows: cause, effect of every CAUSED edge between two of them.
CAUSED_AMONG = Query("caused_among", f"""MATCH (a:{EVENT_LABEL})-[:{CAUSED}]->(b:{EVENT_LABEL})
WHERE a.{EVENT_KEY} IN $ids AND b.{EVENT_KEY} IN $ids
RETURN a.{EVENT_KEY} AS cause, b.{EVENT_KEY} AS effect ORDER BY cause, effect""")

# --- the picture of a prediction (app.report) ---------------------------------------------

_TOPOLOGY = "|".join(TOPOLOGY_RELATIONS)
_ENDS = ("type(t) AS type, a.kind AS source_kind, a.namespace AS source_namespace, a.name AS source_name, "
         "b.kind AS target_kind, b.namespace AS target_namespace, b.name AS target_name")
#: the resources a picture is drawn around: those the match's events affect, and those the prediction impacts
_AROUND = (f"MATCH (e:{EVENT_LABEL})-[:{AFFECTED}]->(r) WHERE e.{EVENT_KEY} IN $ids",
           f"MATCH (:{PREDICTION_LABEL} {{{PREDICTION_KEY}: $prediction}})-[:{IMPACTS}]->(r)")

#: Params `ids` (the match's event ids), `prediction` (its id). Rows: type, source and target (kind,
#: namespace, name) of every topology edge from or to a resource around it, and the edges of the chain
#: of owners above each (up to 4 levels: Pod <- ReplicaSet <- Deployment).
TOPOLOGY_AROUND = Query("topology_around", "\nUNION\n".join(
    part for anchor in _AROUND for part in (
        f"{anchor}\nWITH DISTINCT r AS a\nMATCH (a)-[t:{_TOPOLOGY}]->(b)\nRETURN {_ENDS}",
        f"{anchor}\nWITH DISTINCT r AS b\nMATCH (a)-[t:{_TOPOLOGY}]->(b)\nRETURN {_ENDS}",
        f"""{anchor}
WITH DISTINCT r
MATCH p = (o)-[:OWNS*2..4]->(r)
WITH nodes(p) AS chain
UNWIND range(0, size(chain) - 2) AS i
WITH chain[i] AS a, chain[i + 1] AS b, 'OWNS' AS owns
RETURN {_ENDS.replace("type(t)", "owns")}""")))
