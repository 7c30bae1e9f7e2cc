"""What a container's last log lines say about why it failed: a cause code and its specifics.

Fed by: the signal lines of a container's log (`agents.diagnosis.observed.LogLine`, from
`collectors.podlogs` with `core/kube/vocabulary/log_signals.yaml`). Feeds: the containers family
(a crashing container's cause) and the network family (a dependency a healthy app cannot reach).

Pure. The specifics (a variable name, a host:port, a file, a flag) are read off the line with
small patterns that follow how the common runtimes and libraries word these errors.
"""

from __future__ import annotations

import re

import msgspec

from agents.diagnosis.observed import LogLine

#: log signal -> (cause code, what it means in a sentence, confidence)
SIGNAL_CAUSES: dict[str, tuple[str, str, float]] = {
    "missing-env": ("missing-env-var", "a required environment variable is not set", 0.85),
    "shell-syntax-error": ("shell-syntax-error", "its shell command has a syntax error", 0.85),
    "unknown-command": ("unknown-command-or-flag", "its command or arguments are not understood by the program",
                        0.85),
    "command-not-found": ("command-not-found", "its command does not exist in the image", 0.85),
    "exec-format-error": ("exec-format-error", "its binary is built for another CPU architecture", 0.85),
    "tls-failure": ("tls-certificate", "a TLS certificate is rejected", 0.8),
    "permission-denied": ("permission-denied", "it is denied access to a file or resource", 0.8),
    "credentials-rejected": ("credentials-rejected", "a dependency rejects its credentials", 0.85),
    "dns-failure": ("dns-resolution", "a host name does not resolve", 0.75),
    "connection-refused": ("dependency-unreachable", "a dependency refuses connections", 0.75),
    "connection-timeout": ("dependency-unreachable", "a dependency does not answer", 0.75),
    "panic": ("app-panic", "the application panics", 0.75),
    "traceback": ("app-panic", "the application dies with an unhandled exception", 0.7),
    "oom": ("oom-killed", "it runs out of memory", 0.7),
}
#: which signal explains a crash best when a log has several (the more specific first)
SIGNAL_ORDER = ("missing-env", "shell-syntax-error", "unknown-command", "command-not-found", "exec-format-error",
                "credentials-rejected", "tls-failure", "permission-denied", "dns-failure", "connection-refused",
                "connection-timeout",
                "oom", "panic", "traceback")

_ENV = [
    re.compile(r"environment variable\s+[\"'`$]?\{?([A-Za-z_][A-Za-z0-9_]*)", re.I),
    re.compile(r"KeyError: ['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]"),
    re.compile(r"\b([A-Z][A-Z0-9_]*): parameter (?:null or )?not set"),
    re.compile(r"must set (?:the )?([A-Za-z_][A-Za-z0-9_]*) environment variable", re.I),
    re.compile(r"required key ([A-Za-z_][A-Za-z0-9_]*) missing value"),
    re.compile(r"\b([A-Z][A-Z0-9]*_[A-Z0-9_]+)\b"),
]
_HOST_PORT = re.compile(r"(?:(?<=tcp )|(?<=//)|(?<=@)|(?<=host=)|(?<=to ))([a-z][-a-z0-9]*):(\d{2,5})\b"
                        r"|\b((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-f:]+\]|[a-z][-a-z0-9]*(?:\.[a-z0-9][-a-z0-9]*)+)"
                        r":(\d{2,5})\b", re.I)


def host_port(text: str) -> tuple[str, str] | None:
    found = _HOST_PORT.search(text)
    if not found:
        return None
    return (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
_LOOKUP = [
    re.compile(r"lookup ([^\s:]+)(?: on [^:]+:\d+)?: (?:no such host|server misbehaving|i/o timeout)", re.I),
    re.compile(r"could not translate host name \"([^\"]+)\"", re.I),
    re.compile(r"(?:ENOTFOUND|EAI_AGAIN) ([^\s,]+)"),
    re.compile(r"UnknownHostException: ([^\s:]+)"),
    re.compile(r"[Cc]ould not resolve host:? ([^\s;]+)"),
    re.compile(r"(?:host|hostname|server)[ =:'\"]+([a-z0-9][-a-z0-9.]*\.[a-z]{2,})", re.I),
]
_URL = re.compile(r"https?://([a-z0-9][-a-z0-9.]*[a-z0-9])(?::(\d+))?", re.I)
_PATH = re.compile(r"(?:open |stat |mkdir |access |, open |: )['\"]?(/[^\s'\":,]+)")
_FLAG = [
    re.compile(r"unknown command:? \"?([^\"\s]+)\"?", re.I),
    re.compile(r"unknown (?:shorthand )?flag:? '?([-\w]+)'?", re.I),
    re.compile(r"flag provided but not defined: (-[-\w]+)"),
    re.compile(r"unrecognized arguments?: (\S+)", re.I),
    re.compile(r"(?:unrecognized|invalid|unknown) option:? '?(-[-\w]+)'?", re.I),
]
_CMD = [
    re.compile(r"exec: \"([^\"]+)\": (?:executable file not found|stat)"),
    re.compile(r"(?:sh|bash|ash|dash|zsh): (?:line \d+: |\d+: )?([^\s:]+): (?:command )?not found"),
]
_CERT = re.compile(r"(certificate has expired[^;]*|certificate is not yet valid|certificate signed by unknown authority"
                   r"|certificate is valid for [^,]+(?:, not [^\s]+)?|CERTIFICATE_VERIFY_FAILED[^)]*)", re.I)


class LogCause(msgspec.Struct, kw_only=True, frozen=True):
    cause: str
    meaning: str
    confidence: float
    line: LogLine
    detail: dict[str, str] = {}


def first(patterns: list[re.Pattern[str]], text: str) -> str:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return ""


def specifics(signal: str, text: str) -> dict[str, str]:
    """What the line names: the variable, the host and port, the file, the flag, the certificate problem."""
    out: dict[str, str] = {}
    if signal == "missing-env":
        out["variable"] = first(_ENV, text)
    elif signal in ("connection-refused", "connection-timeout", "credentials-rejected"):
        found = host_port(text)
        if found:
            out["host"], out["port"] = found
        url = _URL.search(text)
        if url and url.group(1) != out.get("host"):  # the name the app asked for, not the address it dialled
            if found:
                out["address"] = f"{found[0]}:{found[1]}"
            out["host"] = url.group(1)
            out["port"] = url.group(2) or out.get("port") or ("443" if url.group(0).startswith("https") else "80")
    elif signal == "dns-failure":
        out["host"] = first(_LOOKUP, text)
    elif signal == "permission-denied":
        found = _PATH.search(text)
        out["path"] = found.group(1) if found else ""
    elif signal == "unknown-command":
        out["argument"] = first(_FLAG, text)
    elif signal == "command-not-found":
        out["command"] = first(_CMD, text)
    elif signal == "tls-failure":
        found = _CERT.search(text)
        out["problem"] = found.group(1) if found else ""
        host = host_port(text)
        if host:
            out["host"], out["port"] = host
    return {k: v for k, v in out.items() if v}


def classify(lines: list[LogLine]) -> LogCause | None:
    """The cause the log lines point at: the most specific signal, its newest line.

    Lines of the previous run are preferred (a crashed container's last words); a signal seen
    only once among many others still counts, since a crash usually logs its cause once.
    """
    if not lines:
        return None
    previous = [line for line in lines if line.previous]
    pool = previous or lines
    by_signal: dict[str, LogLine] = {}
    for line in pool:
        for signal in line.signals or (line.signal,):
            if signal in SIGNAL_CAUSES and (signal not in by_signal or line.at >= by_signal[signal].at):
                by_signal[signal] = line
    for signal in SIGNAL_ORDER:
        if signal in by_signal:
            cause, meaning, confidence = SIGNAL_CAUSES[signal]
            line = by_signal[signal]
            detail = specifics(signal, line.text)
            if signal in ("connection-refused", "connection-timeout", "dns-failure") and "host" not in detail:
                detail |= _named_elsewhere(signal, pool)  # a Java "Caused by:" line names no host
            if signal == "traceback" and line.text.startswith("Traceback"):
                line = max((x for x in pool if "traceback" in x.signals and not x.text.startswith("Traceback")),
                           key=lambda x: x.at, default=line)  # the exception line says what
            return LogCause(cause=cause, meaning=meaning, confidence=confidence, line=line, detail=detail)
    return None


def _named_elsewhere(signal: str, pool: list[LogLine]) -> dict[str, str]:
    for line in sorted(pool, key=lambda x: x.at, reverse=True):
        found = specifics(signal, line.text) if signal == "dns-failure" else \
            dict(zip(("host", "port"), host_port(line.text) or (), strict=False))
        if found.get("host"):
            return found
    return {}


def endpoint(detail: dict[str, str]) -> str:
    """`host:port`, `host`, or "" from a cause's specifics."""
    host, port = detail.get("host", ""), detail.get("port", "")
    return f"{host}:{port}" if host and port else host
