"""secact's log: one ``logging.getLogger("secact")`` that follows scanpy's verbosity.

Every module logs through the logger named ``"secact"`` (``logging.getLogger("secact")``;
this module configures that one object, whoever fetched it first). Where a record goes is
decided when it is emitted, so a change of verbosity takes effect at once:

* **scanpy imported** (``"scanpy"`` in :data:`sys.modules`): the record is handed to
  scanpy's log (:mod:`scanpy.logging`), in scanpy's format and to ``sc.settings.logfile``, and
  shown exactly when scanpy would show its own message of that level:
  ``sc.settings.verbosity`` 0 errors, 1 warnings, 2 info (timings, files written), 3 hints
  (details such as the gene overlap), 4 debug. It does not reach Python's root logger
  (scanpy's messages do not either), so nothing is printed twice.
* **no scanpy**: an ordinary library logger. Nothing is configured: warnings reach stderr
  through Python's last-resort handler, and ``logging.basicConfig(level="INFO")`` (or a
  handler and level on ``logging.getLogger("secact")``) shows more.
* **the command line** (``secact ...``) installs its own stderr handler with
  :func:`cli_logging`, independent of scanpy.

A level set explicitly on the logger (``logging.getLogger("secact").setLevel(...)``) is
respected in every case.

One rule for user-facing events: each is either a :func:`warnings.warn` (something the caller
should act on, which can be filtered or turned into an error) or a log line (what was done,
where results went, how long it took), never both.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

__all__ = ["HINT", "cli_logging", "elapsed", "hint", "logger", "quiet"]

#: scanpy's level between INFO and DEBUG (shown from ``sc.settings.verbosity = 3``)
HINT = (logging.INFO + logging.DEBUG) // 2
logging.addLevelName(HINT, "HINT")  # scanpy registers the same name

#: level of the ``secact`` logger while nobody set one: every record is created and routed
#: by :class:`_Route`, which applies the level that is in effect when it is emitted
_ROUTED = 1

logger = logging.getLogger("secact")

_cli_level: int | None = None  # set while the command line runs


def _scanpy_log():
    """``scanpy.logging`` when scanpy is imported (and usable), else ``None``. Never imports it."""
    sc = sys.modules.get("scanpy")
    if sc is None:
        return None
    log = getattr(sc, "logging", None)
    settings = getattr(sc, "settings", None)
    if settings is None or not all(
        callable(getattr(log, f, None)) for f in ("error", "warning", "info", "hint", "debug")
    ):
        return None  # scanpy half imported, or a version without these functions
    return log


def _to_scanpy(log, record: logging.LogRecord) -> None:
    msg = record.getMessage()
    if record.exc_info:
        msg = f"{msg}\n{logging.Formatter().formatException(record.exc_info)}"
    level = record.levelno
    if level >= logging.ERROR:
        log.error(msg)
    elif level >= logging.WARNING:
        log.warning(msg)
    elif level >= logging.INFO:
        log.info(msg)
    elif level >= HINT:
        log.hint(msg)
    else:
        log.debug(msg)


class _Route(logging.Filter):
    """Send a record to scanpy, the command line's handler or the standard hierarchy."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _cli_level is not None:
            return record.levelno >= _cli_level
        log = _scanpy_log()
        if log is not None:
            try:
                _to_scanpy(log, record)  # scanpy applies its verbosity
            except Exception:  # a logging problem must never stop a computation
                pass  # (e.g. a changed scanpy API): the record goes the standard way below
            else:
                return False
        if logger.level == _ROUTED:  # as if unset: the level the hierarchy above gives
            parent = logger.parent
            threshold = parent.getEffectiveLevel() if parent is not None else logging.WARNING
            return record.levelno >= threshold
        return True  # a level the user set was applied when the record was made


def _install() -> None:
    if not any(isinstance(f, _Route) for f in logger.filters):
        logger.addFilter(_Route())
    if logger.level == logging.NOTSET:
        logger.setLevel(_ROUTED)


_install()


def hint(msg: str, *args) -> None:
    """Log a detail at scanpy's 'hint' level (shown from verbosity 3)."""
    logger.log(HINT, msg, *args)


def elapsed(start: float) -> str:
    """Time since ``start`` (a :func:`time.perf_counter` value) for a log line: ``"0.42 s"``,
    ``"3.1 s"``, ``"2 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0.0, time.perf_counter() - start)
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextlib.contextmanager
def quiet(other: logging.Logger | str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise another library's logger (or the one of that name) to ``level`` for a block
    (pooch announces every download on stderr whatever the verbosity; secact logs its own
    line instead)."""
    if isinstance(other, str):
        other = logging.getLogger(other)
    old = other.level
    other.setLevel(max(level, old))
    try:
        yield
    finally:
        other.setLevel(old)


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (so redirections made later are followed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


class _CliFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        if record.levelno >= logging.ERROR:
            return f"secact: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"secact: warning: {text}"
        if record.levelno >= logging.INFO:
            return text
        return f"  {text}"


@contextlib.contextmanager
def cli_logging(level: int) -> Iterator[None]:
    """Show records from ``level`` up on stderr for the duration of a command, whatever
    scanpy's verbosity; info lines as they are, warnings as ``secact: warning: ...``.
    Restores the logger afterwards."""
    global _cli_level
    handler = _StderrHandler()
    handler.setFormatter(_CliFormatter())
    old = (_cli_level, logger.propagate)
    _cli_level, logger.propagate = int(level), False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        _cli_level, logger.propagate = old
