"""Structured logging: one line per event, as text for people or JSON for machines.

Log lines quote what publishers, subscribers and remote servers wrote (titles, addresses, error
answers) and land on an operator's terminal: control characters are removed from text lines and
escaped in JSON ones, as everywhere the CLI prints (`cli/output.py`)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

from newsletter.terminal import clean, json_text

# Fields a call can pass with `extra=` that belong in the event (kept, never merged into the message).
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        event.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json_text(event, indent=None)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + extras
        line = clean(line).replace("\n", " ")
        if record.exc_info:
            line += "\n" + "\n".join(clean(part) for part in self.formatException(record.exc_info).split("\n"))
        return line


def setup_logging(*, json_lines: bool = False, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("newsletter").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Third-party chatter stays out unless asked for.
    for noisy in ("apscheduler", "urllib3", "alembic", "sqlalchemy", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
