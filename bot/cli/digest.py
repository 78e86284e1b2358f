"""`kvmarm digest` (print) and `kvmarm post` (to Slack), thin layers over bot.digest and
bot.slack.post.  Registered in bot/cli/__init__.py."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime, timedelta

import click

from bot.cli.context import CliContext, pass_ctx
from bot.dates import parse_when
from bot.digest.period import (
    Period,
    PeriodError,
    parse_last,
    period_between,
    period_for_week,
    period_last_week,
)


def period_options(func):
    """--week | --since/--until | --last: the period, by Date header in UTC, half-open."""
    options = (
        click.option("--last", metavar="Nd", help="The last N days up to now, e.g. 7d."),
        click.option("--until", metavar="ISO", help="End of the period, exclusive (UTC)."),
        click.option("--since", metavar="ISO", help="Start of the period, inclusive (UTC)."),
        click.option("--week", metavar="YYYY-Www", help="An ISO week, e.g. 2022-W07 (UTC)."),
    )
    for option in options:
        func = option(func)
    return func


def resolve_period(
    week: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    now: datetime,
) -> Period:
    """The period the options name; none given means the last complete ISO week."""
    chosen = [name for name, v in (("--week", week), ("--since", since), ("--last", last)) if v]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined")
    if until and not since:
        raise click.UsageError("--until needs --since")
    try:
        if week:
            return period_for_week(week)
        if last:
            return parse_last(last, now)
        if since:
            start = parse_when(since, now)
            end = parse_when(until, now) if until else now.replace(microsecond=0)
            return period_between(start, end)
        return period_last_week(now)
    except (PeriodError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc


def pull_before_digest(ctx: CliContext, period: Period, offline: bool, *, required: bool) -> None:
    """Pull the period's mail from lore before a digest, unless ``--offline``.

    A day early: the sync selects by received time, the digest by Date.  When lore cannot
    be reached, a printed digest goes on from the database and says so on stderr; a post
    (``required``) stops instead, because a week is posted only once.
    """
    if offline:
        return
    from bot.progress import progress
    from bot.sync.lore import sync
    from ingest.lore.client import LoreError

    # The pull stores under the write lock (bot.sync); summarising afterwards needs none.
    try:
        with progress("lore", None) as bar:
            report = sync(ctx.db, ctx.config, since=period.since - timedelta(days=1), progress=bar)
    except LoreError as exc:
        message = f"could not pull from lore ({ctx.config.lore_url}): {exc}"
        if required:
            raise click.ClickException(
                f"{message}\nNot posting a week that may be incomplete; retry, or pass "
                "--offline to post from what is stored."
            ) from exc
        click.echo(
            f"warning: {message}; the digest shows what is stored (--offline skips this step)",
            err=True,
        )
        return
    click.echo(f"pulled {report.ingest.added} new mails from lore", err=True)


@click.command()
@period_options
@click.option("--lang", type=click.Choice(["en", "zh"]), help="Language (default KVMARM_LANG).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "slack", "json"]),
    default="markdown",
    show_default=True,
    help="markdown for people, slack for Block Kit JSON, json for the digest model.",
)
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the activity chart (PNG) here and show it in the Markdown.",
)
@click.option("--offline", is_flag=True, help="Do not pull from lore first.")
@click.option(
    "--extractive", is_flag=True, help="Use the extractive summariser even if an LLM is set."
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Forget this period's cached summaries and make them again (may cost LLM tokens).",
)
@pass_ctx
def digest(
    ctx: CliContext,
    week: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    lang: str | None,
    fmt: str,
    chart_path: str | None,
    offline: bool,
    extractive: bool,
    refresh: bool,
) -> None:
    """Print the digest of a week: totals, every active series/thread with its version,
    reviews, status, summary and lore links.  Default: the last complete ISO week.

    Summaries come from the LLM when OPENAI_API_KEY/OPENAI_BASE_URL is set, else they are
    extractive; either way they are cached, so running a week again gives the same text.

    \b
    Examples:
      kvmarm digest --week 2022-W06
      kvmarm digest --last 7d --lang zh
      kvmarm digest --week 2022-W06 --format json | jq '.totals'
      kvmarm digest --week 2022-W06 --chart week.png > week.md
    """
    from bot.digest.chart import render_chart
    from bot.digest.extractive import ExtractiveSummariser
    from bot.digest.model import run_digest
    from bot.digest.render_markdown import render_markdown
    from bot.digest.render_slack import render_slack
    from bot.digest.summarise import make_summariser
    from storage.digests import forget_summaries

    now = datetime.now(UTC)
    period = resolve_period(week, since, until, last, now)
    pull_before_digest(ctx, period, offline, required=False)
    config = ctx.config
    lang = lang or config.lang
    summariser = ExtractiveSummariser() if extractive else make_summariser(config)
    if refresh:
        forget_summaries(ctx.db, period.key)
    run = run_digest(
        ctx.db, period, lang=lang, summariser=summariser, now=now, lore_url=config.lore_url
    )
    model = run.model
    chart_ref = None
    if chart_path:
        png = render_chart(model)
        if png is None:
            click.echo("chart skipped (matplotlib not installed or nothing to draw)", err=True)
        else:
            with open(chart_path, "wb") as fh:
                fh.write(png)
            chart_ref = chart_path
    if fmt == "json":
        _print_json(model)
    elif fmt == "slack":
        _print_json(render_slack(model))
    else:
        click.echo(render_markdown(model, lang, chart=chart_ref), nl=False)
    _report(ctx, model, run.stats)


@click.command()
@click.option("--channel", metavar="C…", help="Slack channel ID (default KVMARM_CHANNEL).")
@period_options
@click.option("--lang", type=click.Choice(["en", "zh"]), help="Language (default KVMARM_LANG).")
@click.option("--force", is_flag=True, help="Post again even if this week was posted here.")
@click.option("--no-chart", is_flag=True, help="Do not upload the activity chart.")
@click.option("--offline", is_flag=True, help="Do not pull from lore first.")
@click.option(
    "--thread",
    "thread_ts",
    metavar="TS",
    help="Continue an interrupted run in this parent message (when Slack could not tell).",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Send again the parts Slack could not show (you checked: they are not there).",
)
@pass_ctx
def post(
    ctx: CliContext,
    channel: str | None,
    week: str | None,
    since: str | None,
    until: str | None,
    last: str | None,
    lang: str | None,
    force: bool,
    no_chart: bool,
    offline: bool,
    thread_ts: str | None,
    resend_unknown: bool,
) -> None:
    """Post the digest to a Slack channel: a parent message with the totals and the top
    items, then one thread reply per category.  Default: the last complete ISO week.

    Each (week, channel) is posted once: a second run, or a run after a crash half-way,
    continues the same thread instead of posting again.  --force posts a new copy.
    Exit status 1 when something is left to post (Slack down, the chart refused): run
    again later to finish it, without duplicates.
    Only channels in KVMARM_CHANNEL / KVMARM_CHANNELS may receive digests.

    \b
    Examples:
      kvmarm post --channel C0123456789 --week 2022-W06
      kvmarm post                      # last week, to $KVMARM_CHANNEL
    """
    from bot.digest.summarise import make_summariser
    from bot.slack.client import make_web_client
    from bot.slack.post import PostError, post_digest

    config = ctx.config
    channel = channel or config.channel
    if not channel:
        raise click.UsageError("--channel is required (or set KVMARM_CHANNEL)")
    if not config.slack_bot_token:
        raise click.ClickException("SLACK_BOT_TOKEN is not set: cannot post (try kvmarm digest)")
    now = datetime.now(UTC)
    period = resolve_period(week, since, until, last, now)
    pull_before_digest(ctx, period, offline, required=True)
    try:
        result = post_digest(
            ctx.db,
            make_web_client(config, logger=_quiet_logger()),
            channel,
            period,
            lang=lang or config.lang,
            summariser=make_summariser(config),
            force=force,
            allowed_channels=config.allowed_channels,
            chart=not no_chart,
            now=now,
            lore_url=config.lore_url,
            thread_ts=thread_ts,
            resend_unknown=resend_unknown,
        )
    except PostError as exc:
        raise click.ClickException(str(exc)) from exc
    if result.already_posted:
        click.echo(
            f"{period.key} was already posted to {channel} (ts {result.parent_ts}); "
            "use --force to post it again"
        )
        return
    how = "continued" if result.resumed else "posted"
    chart = f", chart {result.chart_file}" if result.chart_file else ""
    click.echo(
        f"{how} {period.key} to {channel}: parent {result.parent_ts}, "
        f"{len(result.replies)} replies{chart}"
    )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not result.complete:
        raise click.ClickException(
            f"{period.key} is not completely posted to {channel} "
            f"({', '.join(result.missing)} still open); run again to finish it"
        )


def _quiet_logger() -> logging.Logger:
    """The SDK logs each failed request as an error; `post` says what failed once, itself."""
    quiet = logging.getLogger("kvmarm.post.slack_sdk")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    return quiet


def _report(ctx: CliContext, model: dict, stats) -> None:
    """One line on stderr: what was covered and what the summaries cost."""
    n = model["totals"]
    line = (
        f"{model['period']['key']}: {n['mails']} mails, {n['entries']} entries; summaries: "
        f"{stats.cached} cached, {stats.llm + stats.extractive} new"
    )
    if stats.prompt_tokens or stats.completion_tokens:
        line += f" (LLM tokens: {stats.prompt_tokens} in, {stats.completion_tokens} out)"
    if stats.retried:
        line += f", {stats.retried} asked again after a failed LLM call"
    if stats.fallbacks:
        line += f", {stats.fallbacks} fell back to extractive"
    if stats.out_of_time:
        line += f" ({stats.out_of_time} when the LLM time budget ran out)"
    click.echo(line, err=True)
    if not n["mails"]:
        from storage.views import status_json

        info = status_json(ctx.db, ctx.config.db)
        click.echo(
            f"no mail dated in this period; the database holds {info['messages']} mails "
            f"from {info['first_date']} to {info['last_date']}",
            err=True,
        )


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
