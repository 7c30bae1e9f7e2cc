"""The application: use cases and the adapters they wire (NATS JetStream, Kafka/Faust, the graph, the embedded stack).

Fed by: the `tapio` command (`app.cli`), the worker's HTTP API (`app.api`), the tests and the benchmarks.
Feeds: the stages (`agents`), the collectors and the graph (`topology`), which stand on `core`.
"""
