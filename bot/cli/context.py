"""What every `kvmarm` command shares: the lazily opened config and database, window options.

Command modules (sync, digest, Slack) import ``pass_ctx`` from here and register themselves
in bot/cli/__init__.py with ``main.add_command``.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.config import Config, ConfigError, load_config
from bot.dates import parse_when
from storage.db import Database, StorageError, open_db
from storage.lock import LockError, LockHolder, write_lock

# Commands that write mail or facts: they hold the write lock from the start, so a second
# one waits for the first instead of failing or deriving from half the mail.
WRITING_COMMANDS = frozenset({"ingest", "reindex", "sync", "post"})


class CliContext:
    def __init__(self, db_path: str | None, command: str | None = None) -> None:
        self._db_path = db_path
        self._command = command or "kvmarm"
        self._config: Config | None = None
        self._db: Database | None = None
        self._locks = ExitStack()
        self._locked = False
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(self._locks.close)

    def lock_for_writing(self) -> None:
        """Take the database's write lock for the rest of the command (waiting politely
        for another writer, and saying so on a terminal)."""
        if self._locked:
            return
        try:
            self._locks.enter_context(
                write_lock(self.config.db, f"kvmarm {self._command}", on_wait=_say_waiting)
            )
        except LockError as exc:
            raise click.ClickException(str(exc)) from exc
        self._locked = True

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(db=self._db_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._config

    @property
    def db(self) -> Database:
        if self._db is None:
            writing = self._command in WRITING_COMMANDS
            if writing:
                self.lock_for_writing()
            try:
                self._db = open_db(
                    self.config.db,
                    readonly=not writing and _read_only(self.config.db),
                    command=f"kvmarm {self._command}",
                    on_wait=_say_waiting,
                )
            except StorageError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._db


def _read_only(path: str) -> bool:
    """An existing database this process may read but not write (file or directory)."""
    p = Path(path).expanduser()
    return p.is_file() and not (os.access(p, os.W_OK) and os.access(p.parent, os.W_OK))


def _say_waiting(holder: LockHolder) -> None:
    if sys.stderr.isatty():
        who = f"{holder.command} (pid {holder.pid})" if holder.pid else holder.command
        print(f"waiting for another {who} …", file=sys.stderr, flush=True)


pass_ctx = click.make_pass_decorator(CliContext)


def window_options(func):
    """--since/--until options (Date header, UTC, half-open)."""
    func = click.option(
        "--until", metavar="ISO", help="End of the window, exclusive (Date header, UTC)."
    )(func)
    return click.option(
        "--since", metavar="ISO|7d", help="Start of the window, inclusive (Date header, UTC)."
    )(func)


def parse_window(
    since: str | None, until: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    now = now or datetime.now(UTC)
    try:
        return (
            parse_when(since, now) if since else None,
            parse_when(until, now) if until else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
