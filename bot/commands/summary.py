"""A summary of a whole series or thread by the digest's summariser (an LLM when configured).

`thread` answers carry a short extract of the cover letter at once; when OPENAI_API_KEY or
OPENAI_BASE_URL is set, this asks the digest's LLM summariser for the whole discussion (slow:
Slack gets it as a follow-up message).  Without an LLM there is nothing to add: the digest's
extractive summariser restates the facts the answer already lists.

Cached by the digest (entry, last mail, language, model) under an entry key of its own
("answer:series:<id>"), so a weekly digest's summary of one week is never mistaken for the
summary of the whole discussion, nor the other way round.  Writes to the database (cache).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.commands.results import Summarise, TargetSummary
from bot.config import Config
from bot.digest.entries import build_entry, load_context
from bot.digest.grounding import Directory
from bot.digest.period import period_between
from bot.digest.summarise import make_summariser, summarise_entries
from bot.digest.summary import Summariser
from storage import digests as store
from storage.db import Database
from storage.messages import from_iso
from storage.search import Target


def llm_summarise(
    config: Config,
    *,
    summariser: Summariser | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Summarise | None:
    """A ``Summarise`` for answers, or None when the summariser is not an LLM's."""
    summariser = summariser or make_summariser(config)
    if not summariser.name.startswith("llm"):  # "extractive" or "llm:<model>"
        return None

    def summarise(db: Database, target: Target) -> TargetSummary | None:
        return summarise_target(db, target, summariser, config, now())

    return summarise


def summarise_target(
    db: Database, target: Target, summariser: Summariser, config: Config, now
) -> TargetSummary | None:
    """The summariser's text for everything said in ``target`` so far (None: no mail)."""
    last = from_iso(target.last_date)
    if last is None:
        return None
    until = last + timedelta(seconds=1)
    if target.kind == "series":
        mails = store.series_mails(db, target.id, until)
    else:
        mails = store.thread_mails(db, target.id, until)
    dated = [from_iso(m.date) for m in mails if m.date]
    if not dated:
        return None
    period = period_between(min(dated), until)
    key = f"{target.kind}:{target.id}"
    ctx = load_context(db, period, config.lang, config.lore_url, mails)
    _, built = build_entry(ctx, key, mails)
    if built is None:  # no mail to summarise (cannot happen: mails is not empty)
        return None
    request = replace(
        built,
        entry_key=f"answer:{key}",
        directory=Directory.from_pairs(store.sender_directory(db)),
    )
    summaries, _ = summarise_entries(
        db, [request], summariser, period_until=period.until, now=now, workers=1
    )
    made = summaries[request.entry_key]
    if made.source != "llm":  # the LLM failed or named outsiders: keep the cover extract
        return None
    text = " ".join(part for part in (made.background, made.this_week) if part)
    model = made.model.removeprefix("llm:")
    return TargetSummary(text, f"LLM summary by {model} of all {len(mails)} mails")
