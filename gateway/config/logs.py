"""``[logging]``: how the gateway logs, and setting up the standard ``logging`` for it.

::

    [logging]
    level = "info"       # debug, info, warning, error, critical
    format = "text"      # or "json": one JSON object per line
    access_log = true    # one line per HTTP request (logger "gateway.access")

``configure`` installs one handler on the root logger (standard error) whose lines carry:

- the id of the request being served (``request_id``: the ``X-Request-Id`` the reply
  carries), read from ``gateway.request_context`` by ``RequestIdFilter``; work outside a
  request (start-up, the dispatcher) has none;
- no secret: every message (and traceback) goes through ``gateway.redact`` (the
  password of a URL, secret query values);
- a repeated traceback only once a minute (``TracebackThrottle``): a store that is down
  fails every request the same way, and its traceback once is enough; the next ones
  are a line each, with the exception's type and message.

The access log is at INFO on ``gateway.access`` and follows ``access_log``, not ``level``:
``level = "warning"`` with ``access_log = true`` logs the requests and the warnings.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config_values import table, typed, unknown
from ..errors import ConfigError
from ..redact import text as redact
from ..request_context import REQUEST

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
ACCESS_LOGGER = "gateway.access"
# the settings of `gateway serve`'s logging, for the processes it spawns (workers, the
# outbound dispatcher), which set up their logging from it as soon as they start
ENV = "GATEWAY_LOGGING"
TRACEBACK_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"
    access_log: bool = True


def section(value, base: Path) -> dict[str, Any]:
    """The ``[logging]`` section (None when the file has none)."""
    sec = table(value, "logging")
    unknown(sec, "logging", set(LoggingConfig.__dataclass_fields__))
    defaults = LoggingConfig()
    level = typed(sec, "logging", "level", str, defaults.level).lower()
    fmt = typed(sec, "logging", "format", str, defaults.format).lower()
    if level not in LEVELS:
        raise ConfigError(f"logging.level: must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"logging.format: must be \"text\" or \"json\", not {fmt!r}")
    return {"logging": LoggingConfig(
        level=level, format=fmt,
        access_log=typed(sec, "logging", "access_log", bool, defaults.access_log))}


# --- what each line carries ----------------------------------------------------------------


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id``: the request being served (None outside one), unless
    the line gives its own (the access log, written after the request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            info = REQUEST.get()
            record.request_id = info.id if info is not None else None
        return True


class TracebackThrottle(logging.Filter):
    """The traceback of an error raised at the same place (same logger, exception type
    and innermost frame) is written at most once per ``seconds``; in between, the line
    says what the exception was, without its traceback."""

    MAX_KEYS = 1000

    def __init__(self, seconds: float = TRACEBACK_EVERY_SECONDS, clock=time.monotonic):
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        self._shown: dict[tuple, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if not exc_info or exc_info[1] is None:
            return True
        exc, tb = exc_info[1], exc_info[2]
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else None
        key = (record.name, type(exc).__qualname__, where)
        now = self.clock()
        shown = self._shown.get(key)
        if shown is None or now - shown >= self.seconds:
            if len(self._shown) >= self.MAX_KEYS:
                self._shown.clear()
            self._shown[key] = now
            return True
        summary = str(exc).splitlines()[0][:300] if str(exc) else ""
        record.msg = (f"{record.getMessage()} ({type(exc).__name__}"
                      f"{': ' + summary if summary else ''}; traceback shown at most once "
                      f"every {self.seconds:g} s)")
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


_second: list = [None, ""]  # the last second formatted, and its text (one per second)


def _time(record: logging.LogRecord) -> str:
    """RFC 3339 UTC with milliseconds."""
    seconds = int(record.created)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int(record.msecs):03d}Z"


def _clean(value: str) -> str:
    """``value`` without secrets (``gateway.redact``; what it masks holds ``@`` or ``=``)."""
    return redact(value) if "=" in value or "@" in value else value


class TextFormatter(logging.Formatter):
    """``time LEVEL pid logger [request id] message``, then the traceback, if any (on the
    lines after it: the message itself is kept on its line, new lines written ``\\n``)."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or "-"
        message = _clean(record.getMessage())
        if "\n" in message or "\r" in message:  # a name or a path may hold one
            message = message.replace("\r", "\\r").replace("\n", "\\n")
        line = (f"{_time(record)} {record.levelname} {record.process} {record.name} "
                f"[{rid}] {message}")
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


# the attributes every LogRecord has: the rest are the fields a call gave in ``extra``
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime",
                                                             "request_id", "taskName"}
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # made once: the C encoder


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, process,
    the call's ``extra`` fields, and ``exception`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _time(record), "level": record.levelname, "logger": record.name,
            "message": _clean(record.getMessage()),
            "request_id": getattr(record, "request_id", None), "process": record.process}
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc:
                doc[key] = _clean(value) if isinstance(value, str) else value
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(doc)


# --- setting it up ----------------------------------------------------------------------------


def configure(cfg: LoggingConfig, stream=None, *, export: bool = False) -> logging.Handler:
    """The root logger writes to ``stream`` (standard error) as ``cfg`` says, replacing
    the handlers it had. ``export``: the processes this one spawns do the same
    (``ENV``; ``gateway.cli`` reads it when they import it)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(TracebackThrottle())
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    # the access log follows access_log (it is not written at all when off), not level
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO)
    logging.captureWarnings(True)
    if export:
        os.environ[ENV] = json.dumps(asdict(cfg))
    return handler


def configure_from_environ() -> bool:
    """Set up logging as the process that spawned this one did (``ENV``), if it did."""
    text = os.environ.get(ENV)
    if not text:
        return False
    try:
        cfg = LoggingConfig(**json.loads(text))
    except (ValueError, TypeError):
        return False
    configure(cfg)
    return True
