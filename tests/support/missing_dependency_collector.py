"""A collector module whose own import fails (a library it needs is not installed), as a build without
BCC or grpc would be: the agent must say which library, not fail (tests/app/test_agent_units.py).
Not a test module."""

import tapio_library_that_is_not_installed  # noqa: F401


class MissingDependencyCollector:
    name = "missing-dependency"
