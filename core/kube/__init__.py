"""Kubernetes object knowledge in one place: what an object's change means (`changes`), what a
reason or a container-log line means (`semantics`, `log_signals`, and their data in `vocabulary/`).

Fed by: Kubernetes objects and Events as the API serves them (JSON/YAML as dicts).
Feeds: the enrich and normalize stages, the match stage's membership, the topology service and
the importers, so that they cannot disagree about an object.
"""
