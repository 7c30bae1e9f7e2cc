"""What a CNI plugin's failure means, from its error result or from a log line that quotes it.

Fed by: a plugin's stdout on failure (the CNI spec's error result `{"code": N, "msg": ..., "details": ...}`),
or a containerd / kubelet log line carrying that message (`collectors.journallines`). Feeds: the CNI
collector (`collectors.cni`) and the journald collector, which turn a `CNIFailure` into a node event.

IPAM exhaustion is its own reason (`CNIIPAMExhausted`): host-local answers code 999 "failed to allocate
for range 0: no IP addresses available in range set: A-B" when every address of the range is taken,
and every new pod on the node then sticks in ContainerCreating. Pure.
"""

from __future__ import annotations

import re

import msgspec

#: the CNI spec's well-known error codes (1-99 reserved; 100+ the plugin's own; 999 is what the
#: reference plugins use for everything else)
CODES = {1: "incompatible CNI version", 2: "unsupported field in the network configuration",
         3: "container unknown or does not exist", 4: "invalid necessary environment variables",
         5: "I/O failure", 6: "failed to decode content", 7: "invalid network config",
         11: "try again later"}

_EXHAUSTED = re.compile(r"no IP addresses available in range set:?\s*(?P<range>[0-9a-fA-F.:]+-[0-9a-fA-F.:]+)?"
                        r"|range is full|no free IPs? (?:left|available)", re.IGNORECASE)
_PLUGIN = re.compile(r'plugin type=\\?"(?P<plugin>[\w.-]+)\\?"(?: name=\\?"(?P<network>[\w.-]+)\\?")? failed')
_CNI_TEXT = re.compile(r"failed to (?:setup|set up) network for sandbox|networkPlugin cni failed|"
                       r"failed to (?:destroy|teardown|tear down) network for sandbox|"
                       r'plugin type=\\?"[\w.-]+\\?".* failed|'
                       r"cni plugin not initialized|no networks found in",
                       re.IGNORECASE)


class CNIFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One CNI failure: `reason` CNIIPAMExhausted or CNIError, the plugin's `code` (0 when only a log
    line was seen), its message, the exhausted `range` and the failing `plugin` / `network` when said."""

    reason: str
    message: str
    code: int = 0
    range: str = ""
    plugin: str = ""
    network: str = ""

    @property
    def severity(self) -> str:
        return "error" if self.reason == "CNIIPAMExhausted" else "warning"


class _ErrorResult(msgspec.Struct):
    code: int
    msg: str = ""
    details: str = ""


def plugin_error(output: bytes | str) -> CNIFailure | None:
    """The failure in a plugin's stdout (its error result), or None when the output is a success
    result or not a CNI error at all."""
    try:
        result = msgspec.json.decode(output, type=_ErrorResult)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    text = " ".join(part for part in (result.msg, result.details) if part) or CODES.get(result.code, "plugin error")
    return _classify(text, code=result.code)


def failure_in_text(line: str) -> CNIFailure | None:
    """The CNI failure a log line (containerd's or the kubelet's) reports, or None."""
    if _EXHAUSTED.search(line) is None and _CNI_TEXT.search(line) is None:
        return None
    return _classify(line, code=0)


def _classify(text: str, *, code: int) -> CNIFailure:
    plugin = _PLUGIN.search(text)
    where = {"plugin": plugin["plugin"] or "", "network": plugin["network"] or ""} if plugin else {}
    exhausted = _EXHAUSTED.search(text)
    if exhausted is not None:
        return CNIFailure(reason="CNIIPAMExhausted", message=text, code=code, range=exhausted["range"] or "", **where)
    return CNIFailure(reason="CNIError", message=text, code=code, **where)
