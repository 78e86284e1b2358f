"""`kvmarm` — the command line.  A thin layer: open the DB, call library functions, print.

Each module here holds the commands over one part: store.py (ingest, status, reindex,
series, threads), sync.py (lore and git sync), digest.py (digest, post), slack.py (ask,
serve); context.py is what they share.  Errors from the core (ingest, storage, config)
become a one-line message and exit code 1; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import click

from bot.cli.context import CliContext
from bot.cli.digest import digest, post
from bot.cli.slack import ask, serve
from bot.cli.store import ingest, reindex, series, status, threads
from bot.cli.sync import sync


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = CliContext(db_path)


for _command in (ingest, status, reindex, series, threads, sync, ask, serve, digest, post):
    main.add_command(_command)
