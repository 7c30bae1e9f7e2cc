"""Where a log line comes from: the stage, Kafka partition and offset the current task is handling.

Fed by: the stages (`bind`, per record or batch; each Faust agent runs in its own task, so a contextvar
keeps one agent's binding out of another's lines). Feeds: `ContextFilter`, which `app.log_format` puts on
every handler: it adds the bound fields to each record (a record's own `extra` of the same name wins), so
the JSON lines say where they come from. No I/O.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

__all__ = ["ContextFilter", "bind"]

_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("tapio_log_context", default=None)


def bind(**fields: Any) -> None:
    """Where the current task is (stage=..., partition=..., offset=...): added to its log records."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
