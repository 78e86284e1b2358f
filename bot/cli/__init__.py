"""`kvmarm` — the command line.  A thin layer: open the DB, call library functions, print.

Each module here holds the commands over one part: store.py (ingest, status, reindex,
series, threads), sync.py (lore and git sync), digest.py (digest, post), slack.py (ask,
serve); context.py is what they share.  Every error ends as one line on stderr: exit 1
for a failure of the core (ingest, storage, config), 2 for a usage error; never a
traceback (that goes to KVMARM_DEBUG_LOG).
"""

from __future__ import annotations

import logging
import sqlite3
import sys

import click

from bot.cli.context import CliContext
from bot.cli.digest import digest, post
from bot.cli.slack import ask, notify, serve
from bot.cli.store import ingest, reindex, series, status, threads
from bot.cli.sync import sync
from bot.logs import setup_cli_logging


class Kvmarm(click.Group):
    """The `kvmarm` group: every error ends as one line on stderr (exit 2 for usage, 1 for
    a failure), never a traceback; unexpected ones go to the debug log in full."""

    def main(self, *args, **kwargs):
        setup_cli_logging()
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _fail(f"{exc.format_message()}{hint}", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        except (OSError, sqlite3.Error, RecursionError, MemoryError) as exc:
            logging.getLogger(__name__).debug("failed", exc_info=True)
            _fail(f"{type(exc).__name__}: {exc}", 1)


def _fail(message: str, code: int) -> None:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    click.echo(f"Error: {' '.join(lines)}", err=True)
    sys.exit(code)


@click.group(cls=Kvmarm, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "db_path",
    metavar="PATH",
    help="SQLite database (default: $KVMARM_DB or $XDG_DATA_HOME/kvmarm/kvmarm.db).",
)
@click.version_option(package_name="kvmarm-bot")
@click.pass_context
def main(ctx: click.Context, db_path: str | None) -> None:
    """kvmarm-bot: the kvmarm mailing list as facts — series, versions, reviews, status.

    \b
    Quick start:
      kvmarm ingest ../shared/data/kvmarm-archive/kvmarm-2022-02.mbox.gz
      kvmarm status
      kvmarm series --json --since 2022-02-01 --until 2022-02-08
    """
    ctx.obj = CliContext(db_path, ctx.invoked_subcommand)


for _command in (ingest, status, reindex, series, threads, sync, ask, serve, notify, digest, post):
    main.add_command(_command)
