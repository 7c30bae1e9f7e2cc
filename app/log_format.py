"""How every `tapio` command logs: text for a terminal, or one JSON object a line (`--log-format json`) for
a log pipeline (Loki, Elasticsearch, Cloud Logging...).

Fed by: the root command's `--log-format` and `--log-level` (`app.cli`), and the stages, which say where
they are (`core.log_context.bind`: the stage, the Kafka partition and offset of the record being handled).
Feeds: Python's logging, through `logging.config.dictConfig` (the Faust worker takes the same dict).

A JSON line holds `time`, `level`, `logger`, `message`, and where known `stage`, `partition`, `offset`
and `event_id` (a dead letter's event, passed as `extra`), and `exc_info` for a traceback.
"""

from __future__ import annotations

from typing import Any

from core.log_context import ContextFilter

__all__ = ["FORMATS", "logging_config"]

FORMATS = ("text", "json")


def logging_config(fmt: str, level: str | int, *, stream: str = "ext://sys.stderr") -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: one handler on `stream`, in `fmt` ("text" or "json")."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    formatters: dict[str, Any] = {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "pythonjsonlogger.json.JsonFormatter",
                 "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                 "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {fmt: formatters[fmt]},
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": stream, "formatter": fmt,
                                 "filters": ["context"]}},
        "root": {"level": level.upper() if isinstance(level, str) else level, "handlers": ["default"]},
    }
