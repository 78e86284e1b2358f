"""`kvmarm ask "…"` (the slash grammar in a terminal) and `kvmarm serve` (the Slack app)."""

from __future__ import annotations

from datetime import timedelta

import click

from bot.cli.context import CliContext, pass_ctx
from bot.commands.grammar import SLACK_ONLY, USAGE, UsageError, parse_command


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, required=True)
@pass_ctx
def ask(ctx: CliContext, words: tuple[str, ...]) -> None:
    """Answer a /kvmarm command in the terminal (same words as in Slack).

    Exit status: 0 answered, 1 nothing matched, 2 not a command (usage shown).

    \b
    Examples:
      kvmarm ask "thread FEAT_ECV"
      kvmarm ask who reviewed MTE support for KVM guest
      kvmarm ask series https://lore.kernel.org/kvmarm/20210621111716.37157-1-steven.price@arm.com/
      kvmarm ask reviews Andrew Jones
      kvmarm ask digest 2022-W07
    """
    from datetime import UTC, datetime

    from bot.commands.answers import Sources, answer, summary_note
    from bot.commands.render_text import render_text
    from bot.commands.results import NoMatch
    from bot.commands.summary import llm_summarise
    from bot.digest import PeriodError, make_summariser

    try:
        command = parse_command(" ".join(words))
    except UsageError as err:
        raise click.UsageError(f"{err}\n\n{USAGE}") from err
    if command.name in SLACK_ONLY:
        raise click.UsageError(f"`{command.name}` works in a Slack channel: type /kvmarm there.")
    config = ctx.config
    if command.name == "waiting":
        _print_waiting(ctx, command.query)
        return
    summariser = make_summariser(config)
    if command.name == "digest":
        from bot.commands.digest import markdown_digest

        try:
            text = markdown_digest(ctx.db, command.query, config, summariser, datetime.now(UTC))
        except PeriodError as exc:
            raise click.UsageError(str(exc)) from exc
        click.echo(text, nl=False)
        return
    result = answer(ctx.db, command, Sources(lore_url=config.lore_url, db_path=config.db))
    click.echo(render_text(result), nl=False)
    summarise = llm_summarise(config, summariser=summariser)
    if summarise is not None and (note := summary_note(ctx.db, result, summarise)):
        click.echo("\n" + render_text(note), nl=False)
    if isinstance(result, NoMatch):
        ctx_exit(1)


def _print_waiting(ctx: CliContext, query: str) -> None:
    """`kvmarm ask waiting [all|person]`: the review queue as of now, as text."""
    from datetime import UTC, datetime

    from bot.live.waiting import person_addresses, waiting_for

    who, addresses = (
        ("", None) if query.casefold() in ("", "all") else person_addresses(ctx.db, query)
    )
    if addresses == []:
        click.echo(f"Nobody called {query} gave a review on the list.")
        ctx_exit(1)
    entries = waiting_for(ctx.db, datetime.now(UTC), addresses)
    head = f"Waiting on {who}" if who else "Review queue"
    click.echo(f"{head}: {len(entries)} versions, longest waiting first")
    for e in entries:
        w = e.item
        why = f" [{e.why}]" if e.why else ""
        click.echo(
            f"  {w.days_waiting:4d} days  v{w.version} {w.title} — {w.author_name} "
            f"({w.reviewed}/{w.patches} reviewed){why}"
        )


def ctx_exit(code: int) -> None:
    raise click.exceptions.Exit(code)


@click.command()
@click.option("--http", metavar="HOST:PORT", help="Serve POST /slack/events (signed) here.")
@click.option(
    "--schedule",
    "schedule_text",
    metavar='"DAY HH:MM ZONE"',
    help='Post the weekly digest, e.g. "MON 09:00 Asia/Shanghai".',
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="C…",
    help="Channel for the scheduled digest (default $KVMARM_CHANNEL; must be allowed).",
)
@click.option(
    "--sync-every",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    metavar="MINUTES",
    help="Pull new mail from lore this often so answers are fresh (0: never).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Debug lines of kvmarm itself (never request bodies)."
)
@pass_ctx
def serve(
    ctx: CliContext,
    http: str | None,
    schedule_text: str | None,
    channels: tuple[str, ...],
    sync_every: int,
    verbose: bool,
) -> None:
    """Run the Slack app: /kvmarm commands, @-mentions, buttons, weekly digest.

    Socket Mode by default (SLACK_BOT_TOKEN + SLACK_APP_TOKEN, no public URL); --http
    serves Bolt's POST /slack/events with signature checks (SLACK_SIGNING_SECRET).

    \b
    Examples:
      kvmarm serve
      kvmarm serve --http 0.0.0.0:3000
      kvmarm serve --schedule "MON 09:00 Asia/Shanghai" --channel C0123456789
    """
    from bot.slack.schedule import ScheduleError
    from bot.slack.serve import ServeError, configure_logging
    from bot.slack.serve import serve as run

    configure_logging(debug=verbose)
    try:
        run(
            ctx.config,
            http=http,
            schedule_text=schedule_text,
            channels=channels,
            sync_every=timedelta(minutes=sync_every) if sync_every else None,
            debug=verbose,
        )
    except (ServeError, ScheduleError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@pass_ctx
def notify(ctx: CliContext) -> None:
    """Deliver pending events (new series and versions, reviews, applied, …) to the
    channels subscribed with `/kvmarm subscribe`, once each; for cron.

    Exit status 0 when everything pending was delivered (or nothing was pending), 1 when
    Slack refused something (it is tried again next time).

    \b
    Example (every 10 minutes, after pulling from lore):
      */10 * * * *  kvmarm sync && kvmarm notify
    """
    from datetime import UTC, datetime

    from bot.live.record import record_live_facts
    from bot.slack.client import make_web_client
    from bot.slack.deliver import DeliveryError, deliver_events

    config = ctx.config
    if not config.slack_bot_token:
        raise click.ClickException("notify needs SLACK_BOT_TOKEN (the xoxb-… bot token)")
    db = ctx.db
    record_live_facts(db, datetime.now(UTC))
    try:
        report = deliver_events(db, make_web_client(config), lore_url=config.lore_url)
    except DeliveryError as exc:
        raise click.ClickException(f"{exc}; nothing is lost, run notify again later") from exc
    click.echo(report.describe())
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.failed or report.errors:
        problems = report.failed or len(report.errors)
        raise click.ClickException(
            f"{problems} deliver{'ies' if problems != 1 else 'y'} did not go through; "
            "they are tried again on the next run"
        )
