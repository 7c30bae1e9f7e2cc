"""The DNS collector's real peers: Debian's dnsmasq (NOERROR, NXDOMAIN, no answer at all) and unbound
(a real SERVFAIL), started on loopback high ports as children of the test and stopped after it.

Fed by: the Debian packages below. Feeds: `tests/collectors/test_dns_capture.py` and
`benchmarks/dns_capture.py`.

    with Dnsmasq() as dnsmasq, Unbound() as unbound:
        ...  # dnsmasq.port answers good.test, NXDOMAIN under .test, never answers slow.example

dnsmasq forwards `slow.example` to a UDP socket this module holds open and never reads: the client
gets no answer. unbound forwards everything to 127.0.0.1 port 1, where nothing listens; with
`max-sent-count: 2` and `infra-cache-max-rtt: 500` it gives up and answers SERVFAIL after ~750 ms
(then at once, the forwarder marked down); without them it retries for minutes and never answers.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from dnslib import DNSRecord

PACKAGES = ("dnsmasq-base", "unbound")

GOOD_NAME, GOOD_ADDRESS, GOOD_ADDRESS6 = "good.test", "10.1.2.3", "fd00::1:2:3"  # dnsmasq: NOERROR (A and AAAA)
SILENT_ZONE = "slow.example"  # dnsmasq: forwarded to a server that never answers
BIG_NAME = "big.test"  # dnsmasq: a TXT answer of ~2 kB, two TCP segments on a 1500-byte link


class MissingServer(RuntimeError):
    """A DNS server binary is not installed: run `make node-sources`."""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (the servers take both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise OSError("no free loopback port for both UDP and TCP")


def ask(name: str, port: int, *, host: str = "127.0.0.1", tcp: bool = False, timeout: float = 3.0) -> DNSRecord:
    """One real query; raises TimeoutError (socket.timeout) when no answer comes."""
    query = DNSRecord.question(name, "A")
    return DNSRecord.parse(query.send(host, port, tcp=tcp, timeout=timeout, ipv6=":" in host))


class _Server:
    binary = ""

    def __init__(self) -> None:
        path = shutil.which(self.binary) or (f"/usr/sbin/{self.binary}"
                                             if Path(f"/usr/sbin/{self.binary}").exists() else None)
        if path is None:
            raise MissingServer(f"{self.binary} is not installed: run `make node-sources` "
                                f"(apt-get install {' '.join(PACKAGES)})")
        self.path = path
        self.port = free_udp_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"tapio-{self.binary}-"))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe_name(self) -> str:
        return GOOD_NAME

    def probe_address(self) -> str:
        return "127.0.0.1"

    def __enter__(self) -> _Server:
        log = (self.dir / "log").open("wb")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                output = (self.dir / "log").read_text(errors="replace")
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} exited {self.process.returncode}: {output[-1000:]}")
            try:
                ask(self.probe_name(), self.port, host=self.probe_address(), timeout=0.3)
                return self
            except (TimeoutError, OSError):
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"{self.binary} did not answer on {self.probe_address()}:{self.port} "
                                       "within 10 s") from None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Dnsmasq(_Server):
    """dnsmasq on 127.0.0.1 and ::1: `good.test` NOERROR, `big.test` a ~2 kB TXT answer, any other
    name under `.test` NXDOMAIN, `slow.example` never answered."""

    binary = "dnsmasq"

    def __init__(self, *, address: str = "", port: int = 0, records: dict[str, str] | None = None) -> None:
        """On 127.0.0.1 and ::1 and a free port by default; on `address` (which may appear later:
        a bridge's gateway) and `port` when given. `records`: more names under `.test` that resolve
        (name -> IPv4 address), served from a hosts file that `remove_records` empties (and dnsmasq
        reloads on SIGHUP, with no gap in service), as a DNS record deleted on a live server."""
        super().__init__()
        self.address = address
        self.hosts = self.dir / "hosts"
        self.hosts.write_text("".join(f"{a} {n}\n" for n, a in (records or {}).items()))
        if port:
            self.port = port
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes the forwarded queries, answers none
        self.silent.bind(("127.0.0.1", 0))

    def probe_address(self) -> str:
        return self.address or "127.0.0.1"

    def command(self) -> list[str]:
        silent_port = self.silent.getsockname()[1]
        listen = [f"--listen-address={self.address}", "--bind-dynamic"] if self.address else [
            "--listen-address=127.0.0.1,::1", "--bind-interfaces"]
        return [self.path, "-k", "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--user=root",
                f"--pid-file={self.dir / 'pid'}", *listen,
                f"--port={self.port}", f"--address=/{GOOD_NAME}/{GOOD_ADDRESS}",
                f"--address=/{GOOD_NAME}/{GOOD_ADDRESS6}", f"--addn-hosts={self.hosts}", "--local=/test/",
                f"--txt-record={BIG_NAME}," + ",".join(f'"{chr(97 + i) * 250}"' for i in range(8)),
                f"--server=/{SILENT_ZONE}/127.0.0.1#{silent_port}", "--cache-size=0", "--log-facility=-"]

    def remove_records(self) -> None:
        """Delete every record given as `records`: the names get NXDOMAIN from now on."""
        assert self.process is not None, "the server is not running"
        self.hosts.write_text("")
        self.process.send_signal(signal.SIGHUP)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            super().__exit__(kind, error, trace)
        finally:
            self.silent.close()


UNBOUND_CONF = """\
server:
    interface: 127.0.0.1
    port: {port}
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    do-daemonize: no
    module-config: "iterator"
    num-threads: 1
    verbosity: 0
    max-sent-count: 2
    infra-cache-max-rtt: 500
    local-zone: "probe.local." static
    local-data: "probe.local. A 10.9.9.9"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@1
"""


class Unbound(_Server):
    """unbound on 127.0.0.1 forwarding everything to a dead forwarder: SERVFAIL for any name but
    `probe.local` (a local zone it answers, to know it is up)."""

    binary = "unbound"

    def probe_name(self) -> str:
        return "probe.local"

    def command(self) -> list[str]:
        conf = self.dir / "unbound.conf"
        conf.write_text(UNBOUND_CONF.format(port=self.port, dir=self.dir))
        return [self.path, "-d", "-c", str(conf)]
