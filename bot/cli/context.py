"""What every `kvmarm` command shares: the lazily opened config and database, window options.

Command modules (sync, digest, Slack) import ``pass_ctx`` from here and register themselves
in bot/cli/__init__.py with ``main.add_command``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bot.config import Config, ConfigError, load_config
from bot.dates import parse_when
from storage.db import Database, StorageError, open_db


class CliContext:
    def __init__(self, db_path: str | None) -> None:
        self._db_path = db_path
        self._config: Config | None = None
        self._db: Database | None = None

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
            try:
                self._db = open_db(self.config.db)
            except StorageError as exc:
                raise click.ClickException(str(exc)) from exc
        return self._db


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
