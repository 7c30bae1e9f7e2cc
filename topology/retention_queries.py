"""The Cypher of the graph's retention, as named, parameterized queries (`topology.retention`).

Same rules as `topology.queries`: one dialect FalkorDB and Neo4j 5 both accept, labels from the
model only, values always as parameters.

    (:Retention {id: "events", pruned})   Event nodes deleted so far, written in the same
                                          statement as each deletion (atomic in both backends)
"""

from __future__ import annotations

from topology.model import CAUSED, EVENT_LABEL, MATCHES, PRECEDED, RETENTION_KEY, RETENTION_LABEL
from topology.queries import Query

EVENTS_RECORD = "events"

#: Params `after`, `before` (epoch ms), `keep_intents` (list), `limit`. Deletes at most `limit`
#: Event nodes the sink wrote in [after, before) that no match or cause cites (no MATCHES edge
#: out, no CAUSED or PRECEDED edge either way) and whose intent is not in `keep_intents`, with
#: their AFFECTED edges, and adds them to the retention record. `after` keeps the index range
#: clear of the events kept below it. Row: n = deleted now, pruned = deleted so far.
PRUNE_EVENTS = Query("prune_events", f"""MATCH (e:{EVENT_LABEL})
WHERE e.ingested_at >= $after AND e.ingested_at < $before AND NOT coalesce(e.intent, '') IN $keep_intents
  AND NOT (e)-[:{MATCHES}|{CAUSED}|{PRECEDED}]->() AND NOT (e)<-[:{CAUSED}|{PRECEDED}]-()
WITH e LIMIT $limit
DETACH DELETE e
WITH count(*) AS n
MERGE (r:{RETENTION_LABEL} {{{RETENTION_KEY}: '{EVENTS_RECORD}'}})
SET r.pruned = coalesce(r.pruned, 0) + n
RETURN n, r.pruned AS pruned""")

#: Params `after` (epoch ms). Row: t = the oldest ingest time at or after `after` (null: none).
OLDEST_EVENT = Query("oldest_event", f"""MATCH (e:{EVENT_LABEL})
WHERE e.ingested_at >= $after
RETURN min(e.ingested_at) AS t""")

#: Row: pruned = Event nodes deleted by retention so far (0 when none ever was).
PRUNED_EVENTS = Query("pruned_events", f"""OPTIONAL MATCH (r:{RETENTION_LABEL} {{{RETENTION_KEY}: '{EVENTS_RECORD}'}})
RETURN coalesce(r.pruned, 0) AS pruned""")
