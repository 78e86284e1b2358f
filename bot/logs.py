"""Logging for the command line: warnings as one line each on stderr, never a traceback;
with ``KVMARM_DEBUG_LOG=FILE``, everything down to debug, tracebacks included, in FILE."""

from __future__ import annotations

import logging
import os
import sys


class _UnlessAnotherTerminal(logging.Filter):
    """Stay quiet once a command installs its own terminal handler (`kvmarm serve` logs
    every line itself, redacted): one line per warning, never two."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(
            isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)
            and not getattr(h, "_kvmarm", False)
            for h in logging.getLogger().handlers
        )


class OneLine(logging.Formatter):
    """``warning: <message>`` on one line: no traceback, newlines folded."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        return f"{record.levelname.lower()}: {text}"


def setup_cli_logging(env: dict[str, str] | None = None) -> None:
    """Install the handlers once per process (later calls change nothing)."""
    root = logging.getLogger()
    if any(getattr(h, "_kvmarm", False) for h in root.handlers):
        return
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(OneLine())
    terminal.addFilter(_UnlessAnotherTerminal())
    terminal._kvmarm = True  # type: ignore[attr-defined]
    root.addHandler(terminal)
    root.setLevel(logging.WARNING)
    path = (env if env is not None else os.environ).get("KVMARM_DEBUG_LOG")
    if path:
        try:
            debug = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            root.warning("cannot write the debug log %s: %s", path, exc.strerror)
            return
        debug.setLevel(logging.DEBUG)
        debug.setFormatter(
            logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
        )
        debug._kvmarm = True  # type: ignore[attr-defined]
        root.addHandler(debug)
        root.setLevel(logging.DEBUG)
