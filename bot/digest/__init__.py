"""The weekly digest: select a period's mail, summarise each series/thread, render.

Public API (used by the CLI and the Slack app)::

    period = period_for_week("2022-W07")            # or period_last_week(now), …
    model = build_digest(db, period, lang="en", summariser=make_summariser(config))
    text = render_markdown(model, "en")
    messages = render_slack(model)                  # parent first, then thread replies
"""

from bot.digest.model import build_digest, run_digest
from bot.digest.period import (
    Period,
    PeriodError,
    period_between,
    period_for_week,
    period_from_key,
    period_last_days,
    period_last_week,
    period_this_week,
)
from bot.digest.render_markdown import render_markdown
from bot.digest.render_slack import render_slack
from bot.digest.summarise import make_summariser
from bot.digest.summary import Summariser, SummaryError

__all__ = [
    "Period",
    "PeriodError",
    "Summariser",
    "SummaryError",
    "build_digest",
    "make_summariser",
    "period_between",
    "period_for_week",
    "period_from_key",
    "period_last_days",
    "period_last_week",
    "period_this_week",
    "render_markdown",
    "render_slack",
    "run_digest",
]
