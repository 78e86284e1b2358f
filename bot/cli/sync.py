"""`kvmarm sync`: the command line over bot.sync.lore (lore) and bot.sync.git (git mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli.context import CliContext, parse_window, pass_ctx


@click.command("sync")
@click.option(
    "--since",
    metavar="ISO|7d",
    help="Make sure mail lore received since then is stored (asks only for what is not yet).",
)
@click.option(
    "--git",
    "git_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Backfill from a public-inbox git mirror instead (cloned from lore if DIR is missing).",
)
@click.option("--no-fetch", is_flag=True, help="With --git: do not `git fetch` first.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_ctx
def sync(ctx: CliContext, since: str | None, git_dir: Path | None, no_fetch: bool, as_json: bool):
    """Pull new mail from lore (KVMARM_LORE_URL) into the database.

    Asks lore for every message it received since the last sync, with a two-day overlap
    for mail archived late (first run: the last 14 days, or since --since), plus the
    threads and earlier series versions those messages need.  Nothing is stored unless
    everything arrived; a failed sync is simply run again.

    With --git, reads a public-inbox git mirror instead and ingests only the commits not
    read before: the cheap, polite way to backfill years.

    \b
    Examples:
      kvmarm sync
      kvmarm sync --since 2024-06-01
      kvmarm sync --git ~/lore/kvmarm-0.git   # git clone --mirror https://lore.kernel.org/kvmarm/0
    """
    from bot.progress import progress

    if git_dir is not None:
        if since is not None:
            raise click.UsageError("--since applies to lore searches, not to --git")
        _sync_git(ctx, git_dir, fetch=not no_fetch, as_json=as_json)
        return
    start, _ = parse_window(since, None)
    from bot.sync.lore import sync as sync_lore
    from ingest.lore.client import LoreError

    try:
        with progress("lore", None) as bar:
            report = sync_lore(ctx.db, ctx.config, since=start, progress=bar)
    except LoreError as exc:
        raise click.ClickException(
            f"sync from lore failed: {exc}\nNothing was stored; `kvmarm sync` again resumes "
            "where the last successful sync ended."
        ) from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    ingest = report.ingest
    click.echo(
        f"{ingest.added} new messages from {report.source} ({report.fetched} fetched in "
        f"{report.requests} requests: {report.window} received since {_when(report.since)}, "
        f"{report.context_threads} threads for context, {report.earlier_lookups} series "
        "looked up for earlier versions)"
    )
    click.echo(
        f"stored: mail received {_when(report.covered_from)} .. {_when(report.high_water)}"
        " (the high-water mark)"
    )


def _sync_git(ctx: CliContext, git_dir: Path, *, fetch: bool, as_json: bool) -> None:
    from bot.progress import progress
    from bot.sync.git import SyncError, sync_git
    from ingest.sources import SourceError

    try:
        with progress("git", None) as bar:
            report = sync_git(
                ctx.db, git_dir, clone_url=f"{ctx.config.lore_url}/0", fetch=fetch, progress=bar
            )
    except (SyncError, SourceError) as exc:
        raise click.ClickException(f"sync from git failed: {exc}") from exc
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    ingest = report.ingest
    where = "all commits" if report.since_commit is None else f"after {report.since_commit[:12]}"
    click.echo(
        f"{ingest.added} new messages from {report.source} ({ingest.seen} commits read, "
        f"{where}; {ingest.duplicates} already stored, {ingest.quarantined} quarantined)"
    )
    if report.rewritten:
        click.echo("note: the last commit read is no longer in the history; everything was re-read")


def _when(value) -> str:
    from storage.messages import iso

    return iso(value) or "none yet"
