"""Structured JSON logging: one line per event, carrying the current request id."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
WRITE_INTERVAL_SECONDS = 0.005


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra={...}` fields become top-level keys."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        # strftime once per second rather than once per line.
        second, stamp = self._second
        if int(created) != second:
            second = int(created)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, stamp)
        return f"{stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class BatchedStreamHandler(logging.Handler):
    """Formats each record where it is logged, and writes the lines in order from a thread.

    Formatting in the caller keeps the request id (a context variable) right; the write leaves
    the caller, so an event loop never waits on the stream, and lines logged within a few
    milliseconds of each other reach it in one write. Pending lines are written on `flush()`,
    which `logging.shutdown()` calls at exit.
    """

    def __init__(self, stream: TextIO, interval: float = WRITE_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = threading.Event()
        self._start_writer()
        os.register_at_fork(after_in_child=self._after_fork)

    def _start_writer(self) -> None:
        threading.Thread(target=self._write_forever, name="log-writer", daemon=True).start()

    def _after_fork(self) -> None:
        # Threads do not survive fork; the child writes its own lines (and its parent's
        # unwritten ones would be duplicated, so they are dropped here).
        self._lines = []
        self._lines_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending = threading.Event()
        self._start_writer()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._lines_lock:
            self._lines.append(line)
        if not self._pending.is_set():
            self._pending.set()

    def _write_forever(self) -> None:
        pending = self._pending
        while True:
            pending.wait()
            time.sleep(self.interval)
            pending.clear()
            self.flush()

    def flush(self) -> None:
        """Write every pending line now."""
        with self._write_lock:
            with self._lines_lock:
                lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # the stream is closed or broken: nowhere left to report it

    def close(self) -> None:
        self.flush()
        super().close()


_handler: BatchedStreamHandler | None = None


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (including uvicorn's and gunicorn's) to JSON lines on stderr."""
    # Nothing we log uses the caller's file and line, thread or process names: skip collecting
    # them for every record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _handler  # one writer thread per process, however often this runs
    if _handler is None:
        _handler = BatchedStreamHandler(sys.stderr)
    else:
        _handler.flush()
        _handler.stream = sys.stderr
    _handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Our middleware logs each request with its id; the server's access log would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True


def security_event(logger: logging.Logger, event: str, **fields: Any) -> None:
    """Log an authentication or authorisation event; callers never pass secrets."""
    logger.info(event, extra={"security_event": event, **fields})
