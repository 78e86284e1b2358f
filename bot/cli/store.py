"""`kvmarm ingest|status|reindex|series|threads`: the commands over the stored mail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli.context import CliContext, parse_window, pass_ctx, window_options
from bot.progress import progress


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def ingest(ctx: CliContext, paths: tuple[Path, ...], as_json: bool) -> None:
    """Store mails from mbox, mbox.gz, maildir, .eml or public-inbox git epochs.

    Mails already stored (same Message-ID) are skipped; unparseable ones are quarantined
    with the reason (see `kvmarm status`).  Threads, series and trailers are rebuilt after.

    \b
    Example:
      kvmarm ingest ~/mail/kvmarm-2022-0*.mbox.gz
      kvmarm ingest /srv/lore/kvmarm/git/0.git
    """
    from bot.sync.pipeline import default_workers, ingest_mails
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@pass_ctx
def status(ctx: CliContext, as_json: bool) -> None:
    """Counts, date range, quarantined mails, last sync and the database path.

    \b
    Example:
      kvmarm status --json | jq .messages
    """
    from bot.sync.pipeline import facts_out_of_date, parse_outdated
    from storage.views import status_json

    info = status_json(ctx.db, ctx.config.db)
    info["reindex_needed"] = parse_outdated(ctx.db)
    info["facts"] = "out of date" if facts_out_of_date(ctx.db) else "current"
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
    click.echo(f"set aside:   {info['set_aside']} (stored, left out of threads and series)")
    for a in info["set_aside_list"]:
        click.echo(f"  - {a['msgid']}: {a['reason']}")
    if info["facts"] != "current":
        why = (
            f"{info['facts_pending']} stored mails not derived yet, e.g. after an interrupted run"
            if info["facts_pending"]
            else "derived by an older version's rules"
        )
        click.echo(f"facts:       OUT OF DATE ({why}): the next ingest or sync rebuilds them")
    else:
        click.echo("facts:       current")
    if info["reindex_needed"]:
        click.echo("note:        stored mail was parsed by an older version: run `kvmarm reindex`")
    click.echo(f"last sync:   {_describe(info['last_sync'])}")
    click.echo(f"last ingest: {_describe(info['last_ingest'])}")


@click.command()
@pass_ctx
def reindex(ctx: CliContext) -> None:
    """Re-parse every stored mail from its raw bytes, then rebuild threads and series.

    Needed after an upgrade that changed how mail is parsed (`kvmarm status` says so);
    nothing is fetched and nothing is lost.

    \b
    Example:
      kvmarm reindex
    """
    from bot.sync.pipeline import reindex as reindex_all
    from bot.sync.pipeline import workers_for_mails
    from storage.messages import count_messages

    db = ctx.db
    total = count_messages(db)
    with progress("reindex", total) as bar:
        count = reindex_all(db, workers=workers_for_mails(total), on_mail=lambda _m: bar.advance())
    click.echo(f"{count} mails re-parsed; threads, series and trailers rebuilt")


def warn_if_facts_stale(db) -> None:
    """One line on stderr when the derived facts lag the stored mail."""
    from bot.sync.pipeline import facts_out_of_date

    if facts_out_of_date(db):
        click.echo(
            "warning: threads and series are out of date with the stored mail (an interrupted "
            "run?); the next ingest or sync rebuilds them",
            err=True,
        )


def _describe(state: dict | None) -> str:
    if not state:
        return "never"
    return ", ".join(f"{k}={v}" for k, v in state.items())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@window_options
@pass_ctx
def series(ctx: CliContext, as_json: bool, since: str | None, until: str | None) -> None:
    """Patch series with their versions, patches, trailers and status.

    \b
    Example:
      kvmarm series --json --since 2022-02-01 --until 2022-02-08
    """
    from storage.views import series_json

    rows = series_json(ctx.db, *parse_window(since, until), as_of=datetime.now(UTC))
    warn_if_facts_stale(ctx.db)
    if as_json:
        _print_json(rows)
        return
    for s in rows:
        versions = ", ".join(f"v{v['version']}" for v in s["versions"])
        click.echo(f"{s['status']:<18} {s['title']}  [{versions}]  <{s['author']['email']}>")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable contract).")
@window_options
@pass_ctx
def threads(ctx: CliContext, as_json: bool, since: str | None, until: str | None) -> None:
    """Threads with their messages in the window.

    \b
    Example:
      kvmarm threads --json --since 7d
    """
    from storage.views import threads_json

    rows = threads_json(ctx.db, *parse_window(since, until))
    warn_if_facts_stale(ctx.db)
    if as_json:
        _print_json(rows)
        return
    for t in rows:
        click.echo(f"{len(t['messages']):>4}  {t['subject']}")


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
