"""The Cypher of feedback and pattern statistics, as named, parameterized queries.

Fed by: `topology.model` (labels, keys, relationship names). Feeds: `topology.feedback` (store
and read votes) and the API's readiness probe (`PING`). Same rules as `topology.queries`: one
dialect FalkorDB 4.16 and Neo4j 5 both accept, labels from the model only, every value a
parameter (a comment or an id from a request never becomes Cypher text).

Graph written per vote:

    (f:Feedback {id, prediction_id, accurate, rating, comment, at, source})-[:VALIDATES]->(pr:Prediction)

The write MATCHes the prediction first, so a vote on an unknown prediction writes nothing, and
MERGEs on the vote's id, so a retried statement leaves one vote.
"""

from __future__ import annotations

from topology.model import FEEDBACK_KEY, FEEDBACK_LABEL, PREDICTION_KEY, PREDICTION_LABEL, VALIDATES
from topology.queries import Query

#: Params `id`, `prediction_id`, `accurate` (bool), `rating` (-1, 0, 1), `comment` (or null),
#: `at` (epoch ms), `source` (`api`, `cli`). Writes nothing when the prediction is unknown.
RECORD_FEEDBACK = Query("record_feedback", f"""MATCH (pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: $prediction_id}})
MERGE (f:{FEEDBACK_LABEL} {{{FEEDBACK_KEY}: $id}})
ON CREATE SET f.prediction_id = $prediction_id, f.accurate = $accurate, f.rating = $rating,
    f.comment = $comment, f.at = $at, f.source = $source
MERGE (f)-[:{VALIDATES}]->(pr)""")

#: Params `id`. Rows (0 or 1): pattern, version of the prediction.
PREDICTION_PATTERN = Query("prediction_pattern", f"""MATCH (pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: $id}})
RETURN pr.pattern AS pattern, pr.version AS version""")

_FEEDBACK_COLUMNS = ("f.id AS id, pr.id AS prediction_id, pr.pattern AS pattern, pr.version AS version, "
                     "f.accurate AS accurate, f.rating AS rating, f.comment AS comment, f.at AS at, f.source AS source")

#: Params `id`. Rows (0 or 1): the vote with its prediction's pattern and version.
FEEDBACK_BY_ID = Query("feedback_by_id", f"""MATCH (f:{FEEDBACK_LABEL} {{{FEEDBACK_KEY}: $id}})
      -[:{VALIDATES}]->(pr:{PREDICTION_LABEL})
RETURN {_FEEDBACK_COLUMNS}""")

#: Params `prediction_id`. Rows: every vote on one prediction, oldest first.
FEEDBACK_ON = Query("feedback_on", f"""MATCH (f:{FEEDBACK_LABEL})
      -[:{VALIDATES}]->(pr:{PREDICTION_LABEL} {{{PREDICTION_KEY}: $prediction_id}})
RETURN {_FEEDBACK_COLUMNS}
ORDER BY at, id""")

#: Rows: pattern, version, total, accurate: the votes on each pattern version's predictions.
#: Reads Feedback nodes only (a worker runs it every feedback.refresh_interval_s).
VOTES = Query("votes", f"""MATCH (f:{FEEDBACK_LABEL})-[:{VALIDATES}]->(pr:{PREDICTION_LABEL})
RETURN pr.pattern AS pattern, pr.version AS version, count(f) AS total,
       sum(CASE WHEN f.accurate THEN 1 ELSE 0 END) AS accurate
ORDER BY pattern, version""")

#: Rows: pattern, version, predictions: how many predictions each pattern version made.
PREDICTION_COUNTS = Query("prediction_counts", f"""MATCH (pr:{PREDICTION_LABEL})
RETURN pr.pattern AS pattern, pr.version AS version, count(pr) AS predictions
ORDER BY pattern, version""")

#: Rows: n = the number of Feedback nodes (tests: a refused request leaves none).
COUNT_FEEDBACK = Query("count_feedback", f"MATCH (f:{FEEDBACK_LABEL}) RETURN count(f) AS n")

#: Rows: ok = 1. The readiness probe: the graph answers a query.
PING = Query("ping", "RETURN 1 AS ok")
