"""`kvmarm` — the command line.  A thin layer: open the DB, call library functions, print.

Errors from the core (ingest, storage, config) become a one-line message and exit code 1;
usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli_context import Context, parse_window, pass_ctx, window_options
from bot.progress import progress


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
    ctx.obj = Context(db_path)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def ingest(ctx: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Store mails from mbox, mbox.gz, maildir, .eml or public-inbox git epochs.

    Mails already stored (same Message-ID) are skipped; unparseable ones are quarantined
    with the reason (see `kvmarm status`).  Threads, series and trailers are rebuilt after.

    \b
    Example:
      kvmarm ingest ~/mail/kvmarm-2022-0*.mbox.gz
      kvmarm ingest /srv/lore/kvmarm/git/0.git
    """
    from bot.pipeline import default_workers, ingest_mails
    from ingest.sources import SourceError, count_bytes, iter_raw_mails

    db = ctx.db
    try:
        total = sum(count_bytes(p) for p in paths)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc

    def mails(bar):
        for path in paths:
            bar.update(f"ingest {path.name}")
            yield from iter_raw_mails(path)

    try:
        with progress("ingest", total, unit="bytes") as bar:
            report = ingest_mails(
                db,
                mails(bar),
                workers=default_workers(total),
                on_mail=lambda m: bar.advance(len(m.data)),
            )
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(
            f"{report.seen} mails read: {report.added} new, {report.replaced} replaced by the "
            f"preferred list's copy, {report.duplicates} already stored, "
            f"{report.quarantined} quarantined"
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Counts, date range, quarantined mails, last sync and the database path.

    \b
    Example:
      kvmarm status --json | jq .messages
    """
    from bot.pipeline import parse_outdated
    from storage.views import status_json

    info = status_json(ctx.db, ctx.config.db)
    info["reindex_needed"] = parse_outdated(ctx.db)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"database:    {info['db']}")
    click.echo(f"messages:    {info['messages']} ({info['first_date']} .. {info['last_date']})")
    click.echo(f"threads:     {info['threads']}")
    click.echo(f"series:      {info['series']} ({info['versions']} versions)")
    click.echo(
        f"problems:    {info['with_problems']} messages stored with parse problems, "
        f"{info['undated']} without a usable Date"
    )
    click.echo(f"quarantined: {info['quarantined']}")
    for q in info["quarantine"]:
        click.echo(f"  - {q['origin']}: {q['reason']}")
    if info["reindex_needed"]:
        click.echo("note:        stored mail was parsed by an older version: run `kvmarm reindex`")
    click.echo(f"last sync:   {_describe(info['last_sync'])}")
    click.echo(f"last ingest: {_describe(info['last_ingest'])}")


@main.command()
@pass_ctx
def reindex(ctx: Context) -> None:
    """Re-parse every stored mail from its raw bytes, then rebuild threads and series.

    Needed after an upgrade that changed how mail is parsed (`kvmarm status` says so);
    nothing is fetched and nothing is lost.

    \b
    Example:
      kvmarm reindex
    """
    from bot.pipeline import reindex as reindex_all
    from bot.pipeline import workers_for_mails
    from storage.messages import count_messages

    db = ctx.db
    total = count_messages(db)
    with progress("reindex", total) as bar:
        count = reindex_all(db, workers=workers_for_mails(total), on_mail=lambda _m: bar.advance())
    click.echo(f"{count} mails re-parsed; threads, series and trailers rebuilt")


def _describe(state: dict | None) -> str:
    if not state:
        return "never"
    return ", ".join(f"{k}={v}" for k, v in state.items())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@window_options
@pass_ctx
def series(ctx: Context, as_json: bool, since: str | None, until: str | None) -> None:
    """Patch series with their versions, patches, trailers and status.

    \b
    Example:
      kvmarm series --json --since 2022-02-01 --until 2022-02-08
    """
    from storage.views import series_json

    rows = series_json(ctx.db, *parse_window(since, until), as_of=datetime.now(UTC))
    if as_json:
        _print_json(rows)
        return
    for s in rows:
        versions = ", ".join(f"v{v['version']}" for v in s["versions"])
        click.echo(f"{s['status']:<18} {s['title']}  [{versions}]  <{s['author']['email']}>")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@window_options
@pass_ctx
def threads(ctx: Context, as_json: bool, since: str | None, until: str | None) -> None:
    """Threads with their messages in the window.

    \b
    Example:
      kvmarm threads --json --since 7d
    """
    from storage.views import threads_json

    rows = threads_json(ctx.db, *parse_window(since, until))
    if as_json:
        _print_json(rows)
        return
    for t in rows:
        click.echo(f"{len(t['messages']):>4}  {t['subject']}")


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


from bot.sync_cli import sync as _sync_cmd  # noqa: E402

main.add_command(_sync_cmd)

from bot.slack_cli import ask as _ask_cmd  # noqa: E402
from bot.slack_cli import serve as _serve_cmd  # noqa: E402

main.add_command(_ask_cmd)
main.add_command(_serve_cmd)

from bot.digest.cli import digest as _digest_cmd  # noqa: E402
from bot.digest.cli import post as _post_cmd  # noqa: E402

main.add_command(_digest_cmd)
main.add_command(_post_cmd)
