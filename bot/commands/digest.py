"""`digest [this|last|YYYY-Www]`: which period the words name, and the digest as Markdown.

The digest itself is bot.digest's (build_digest, render_markdown); this only maps the
grammar's words to its periods, for `kvmarm ask` and the Slack app.
"""

from __future__ import annotations

from datetime import datetime

from bot.config import Config
from bot.digest import (
    Period,
    Summariser,
    build_digest,
    period_for_week,
    period_last_week,
    period_this_week,
    render_markdown,
)
from storage.db import Database


def digest_period(spec: str, now: datetime) -> Period:
    """``"this"`` / ``"last"`` (ISO weeks, UTC, relative to ``now``) or ``"2022-W07"``.

    Raises bot.digest.PeriodError for a week that does not exist (2021-W53).
    """
    if spec == "this":
        return period_this_week(now)
    if spec == "last":
        return period_last_week(now)
    return period_for_week(spec)


def markdown_digest(
    db: Database,
    spec: str,
    config: Config,
    summariser: Summariser,
    now: datetime,
) -> str:
    period = digest_period(spec, now)
    model = build_digest(
        db, period, lang=config.lang, summariser=summariser, now=now, lore_url=config.lore_url
    )
    return render_markdown(model, config.lang)
