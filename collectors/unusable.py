"""What a collector could not use, in one shape: an `UnusableInput` per bad part of an input.

Fed by: every reader of the collectors: recordings (`collectors.kubefiles`, `collectors.replay`),
kubectl text (`collectors.kubetext`), support bundles and their archives (`collectors.bundles`,
`collectors.bundlefiles`), container logs (`collectors.podlogs`) and the live watchers
(`collectors.watching`, an object the API served that cannot be used).
Feeds: the dead letters (`app.collect`, `collectors.replayer`: stage, reason, where, fragment) and
the summaries that list what could not be read (`tapio replay`, `tapio analyze`).

It is a record, not an exception: readers yield it next to the events they could read, and go on.
"""

from __future__ import annotations

import msgspec

FRAGMENT_CHARS = 200  # how much of the offending input an UnusableInput quotes


class UnusableInput(msgspec.Struct, frozen=True, kw_only=True):
    """One part of an input that could not be used; the rest of the input still is."""

    file: str  # path as given, or the live source ("kubeapi:<server>/<resource>")
    position: str  # "line 12, column 5", "items[3]", "document 2", "line 40 (watch event 7)", "MODIFIED ns/name"
    reason: str  # what was wrong, for a human
    fragment: str = ""  # up to FRAGMENT_CHARS characters of the offending input

    def __str__(self) -> str:  # printable and encodable, whatever the input held (a lone surrogate)
        return printable(f"{self.file}: {self.position}: {self.reason}")


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates, which JSON's \\ud800 decodes to) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
