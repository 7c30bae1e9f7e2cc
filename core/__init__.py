"""The domain core: what every other package of Tapio stands on, and which imports none of them.

- `core.events`: RawEvent (what collectors emit) and UnifiedEvent (what the dataflow reasons about);
- `core.records`: the typed record of every topic and subject;
- `core.codec`: msgspec codecs for the wire (JSON on NATS, MessagePack on Kafka), `Poison`;
- `core.settings`: the configuration, one YAML file overridable by the environment;
- `core.stats`: per-stage counters;
- `core.ports`: the Protocols the stages need (dead-letter sink, event publisher, graph writer,
  stage runtime) and the graph's error types;
- `core.kube`: Kubernetes object knowledge and vocabulary.

Layers (checked by import-linter, `pyproject.toml`): `app` wires adapters to these ports and holds
the CLI, API and use cases; `agents`, `collectors` and `topology` depend on `core` only.
"""
