"""A collector module whose top level fails as a shared library that will not load does (ctypes raises
OSError): the agent must name the module and the error, not stop (tests/app/test_agent_units.py).
Not a test module."""

raise OSError("libbcc.so.0: cannot open shared object file: No such file or directory")
