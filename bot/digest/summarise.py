"""Summarising the entries of a digest: pick the summariser, check, cache, fall back.

The types (``Summarizer``, ``SummaryRequest``, ``Summary``) are in summary.py.

``summarise_entries`` is the one caller: it looks each entry up in the cache (keyed by entry,
last message, language, model and prompt version), asks the summariser for the misses,
rejects answers that name people outside the thread or versions that do not exist, falls
back to the extractive summary when the LLM fails or is rejected (and says so in ``note``),
records token usage and stores the result.  Re-running a week therefore costs 0 tokens and
gives the same text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from bot.digest.extractive import ExtractiveSummarizer
from bot.digest.grounding import check_summary
from bot.digest.summary import Summarizer, Summary, SummaryError, SummaryRequest, Usage
from storage import digests as store
from storage.db import Database

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
# Below this many characters of people's own words this period, the facts say it all:
# such entries get the extractive summary without asking the LLM.
MIN_LLM_TEXT = 200


def make_summarizer(config: Config) -> Summarizer:
    """The LLM summariser when OPENAI_API_KEY or OPENAI_BASE_URL is set, else extractive."""
    if not (config.openai_api_key or config.openai_base_url):
        return ExtractiveSummarizer()
    from bot.digest.llm import OpenAISummarizer, make_openai_client

    return OpenAISummarizer(make_openai_client(config), config.llm_model or DEFAULT_MODEL)


@dataclass(frozen=True, slots=True)
class RunStats:
    cached: int = 0
    llm: int = 0
    extractive: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def summarise_entries(
    db: Database,
    requests: Sequence[SummaryRequest],
    summarizer: Summarizer,
    *,
    period_until: datetime,
    now: datetime,
    workers: int = 4,
) -> tuple[dict[str, Summary], RunStats]:
    """One summary per request (keyed by entry), from the cache or freshly made and stored."""
    fallback = ExtractiveSummarizer()
    results: dict[str, Summary] = {}
    misses: list[tuple[store.CacheKey, SummaryRequest]] = []
    for request in requests:
        key = _cache_key(request, summarizer)
        cached = store.get_summary(db, key)
        if cached is not None:
            results[request.entry_key] = _from_stored(cached)
        else:
            misses.append((key, request))
    stats = RunStats(cached=len(results))
    made = _run(summarizer, fallback, [r for _, r in misses], workers)
    for (key, request), outcome in zip(misses, made, strict=True):
        summary = _settle(request, outcome, fallback)
        _record_usage(db, request, summarizer, summary, outcome, now)
        store.save_summary(
            db, key, _to_stored(summary, request), period_until=period_until, now=now
        )
        results[request.entry_key] = summary
        stats = _count(stats, summary)
    return results, stats


def _run(
    summarizer: Summarizer,
    fallback: Summarizer,
    requests: list[SummaryRequest],
    workers: int,
) -> list[Summary | SummaryError]:
    extractive = isinstance(summarizer, type(fallback))

    def one(request: SummaryRequest) -> Summary | SummaryError:
        if not extractive and request.own_text_chars < MIN_LLM_TEXT:
            return fallback.summarize(request)
        try:
            return summarizer.summarize(request)
        except SummaryError as exc:
            log.warning("summary of %s failed: %s", request.entry_key, exc)
            return exc

    if workers <= 1 or extractive or len(requests) < 2:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, requests))


def _settle(
    request: SummaryRequest,
    outcome: Summary | SummaryError,
    fallback: Summarizer,
) -> Summary:
    """Accept a grounded LLM summary; otherwise the extractive one, saying why."""
    if isinstance(outcome, SummaryError):
        return _fallback(request, fallback, f"LLM summary unavailable ({outcome})", outcome.usage)
    if outcome.source != "llm":
        return outcome
    problems = check_summary(outcome, request)
    if problems:
        log.warning("summary of %s rejected: %s", request.entry_key, "; ".join(problems))
        return _fallback(
            request, fallback, "LLM summary rejected: " + "; ".join(problems), outcome.usage
        )
    if not request.has_history and outcome.background:
        outcome = replace(outcome, background=None)  # nothing earlier to go on: never invent
    return outcome


def _fallback(
    request: SummaryRequest, fallback: Summarizer, note: str, usage: Usage | None
) -> Summary:
    return replace(fallback.summarize(request), note=note, usage=usage)


def _record_usage(db, request, summarizer, summary: Summary, outcome, now: datetime) -> None:
    usage = summary.usage
    if usage is None:
        return
    result = "error" if isinstance(outcome, SummaryError) else "ok"
    if result == "ok" and summary.source != "llm":
        result = "rejected"
    store.record_usage(
        db,
        entry_key=request.entry_key,
        model=summarizer.name,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        prompt_chars=usage.prompt_chars,
        outcome=result,
        now=now,
    )


def _count(stats: RunStats, summary: Summary) -> RunStats:
    usage = summary.usage or Usage(0, 0, 0, 0)
    return replace(
        stats,
        llm=stats.llm + (summary.source == "llm"),
        extractive=stats.extractive + (summary.source != "llm"),
        fallbacks=stats.fallbacks + (summary.note is not None),
        prompt_tokens=stats.prompt_tokens + usage.prompt_tokens,
        completion_tokens=stats.completion_tokens + usage.completion_tokens,
    )


def _cache_key(request: SummaryRequest, summarizer: Summarizer) -> store.CacheKey:
    return store.CacheKey(
        entry_key=request.entry_key,
        last_msgid=request.last_msgid,
        lang=request.lang,
        model=summarizer.name,
        prompt_version=summarizer.prompt_version,
    )


def _to_stored(summary: Summary, request: SummaryRequest) -> store.StoredSummary:
    return store.StoredSummary(
        background=summary.background,
        this_week=summary.this_week,
        source=summary.source,
        model=summary.model,
        cited=summary.cited,
        note=summary.note,
        period_key=request.period_key,
    )


def _from_stored(stored: store.StoredSummary) -> Summary:
    return Summary(
        background=stored.background,
        this_week=stored.this_week,
        source=stored.source,
        model=stored.model,
        cited=stored.cited,
        note=stored.note,
    )
