"""Summarising the entries of a digest: pick the summariser, check, cache, fall back.

The types (``Summariser``, ``SummaryRequest``, ``Summary``) are in summary.py.

``summarise_entries`` is the one caller: it looks each entry up in the cache (keyed by entry,
last message, language, model and prompt version), asks the summariser for the misses,
rejects answers that name people outside the thread, versions that do not exist or claims
(reviewed, acked, applied …) the facts do not show, falls back to the extractive summary
when the LLM fails or is rejected (and says so in ``note``), records token usage and stores
the result.  Re-running a week therefore costs 0 tokens and gives the same text — except
for entries whose LLM call *failed* (error, timeout, time budget used up): those are stored
as fallbacks and asked again on the next run, until a good summary replaces them.

The LLM's work for one digest has a time budget (``summariser.budget`` seconds, default
``KVMARM_LLM_BUDGET`` = 100): entries not summarised when it runs out get the extractive
summary with a note saying so, and the digest is not held up by a hanging endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from bot.digest.claims import check_claims
from bot.digest.extractive import ExtractiveSummariser
from bot.digest.grounding import check_summary
from bot.digest.summary import (
    OutOfTime,
    Summariser,
    Summary,
    SummaryError,
    SummaryRequest,
    Usage,
)
from storage import digests as store
from storage.db import Database

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
# Below this many characters of people's own words this period, the facts say it all:
# such entries get the extractive summary without asking the LLM.
MIN_LLM_TEXT = 200


def make_summariser(config: Config) -> Summariser:
    """The LLM summariser when OPENAI_API_KEY or OPENAI_BASE_URL is set, else extractive."""
    if not (config.openai_api_key or config.openai_base_url):
        return ExtractiveSummariser()
    from bot.digest.llm import OpenAISummariser, make_openai_client

    return OpenAISummariser(
        make_openai_client(config, timeout=config.llm_timeout),
        config.llm_model or DEFAULT_MODEL,
        budget=config.llm_budget,
        timeout=config.llm_timeout,
    )


@dataclass(frozen=True, slots=True)
class RunStats:
    cached: int = 0
    llm: int = 0
    extractive: int = 0
    fallbacks: int = 0
    out_of_time: int = 0  # fell back because the time budget ran out
    retried: int = 0  # cached fallbacks asked again
    prompt_tokens: int = 0
    completion_tokens: int = 0


def summarise_entries(
    db: Database,
    requests: Sequence[SummaryRequest],
    summariser: Summariser,
    *,
    period_until: datetime,
    now: datetime,
    workers: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Summary], RunStats]:
    """One summary per request (keyed by entry), from the cache or freshly made and stored.

    A cached fallback for a failed call is asked again (within the budget); if that fails
    too, the fallback stands and stays marked for the next run.
    """
    fallback = ExtractiveSummariser()
    results: dict[str, Summary] = {}
    misses: list[tuple[store.CacheKey, SummaryRequest]] = []
    retried = 0
    for request in requests:
        key = _cache_key(request, summariser)
        cached = store.get_summary(db, key)
        if cached is not None and not cached.retry:
            results[request.entry_key] = _from_stored(cached)
        else:
            misses.append((key, request))
            retried += cached is not None
    stats = RunStats(cached=len(results), retried=retried)
    budget = getattr(summariser, "budget", None)
    deadline = clock() + budget if budget is not None else None
    made = _run(summariser, fallback, [r for _, r in misses], workers, deadline, clock)
    for (key, request), outcome in zip(misses, made, strict=True):
        summary = _settle(request, outcome, fallback)
        _record_usage(db, request, summariser, summary, outcome, now)
        store.save_summary(
            db, key, _to_stored(summary, request), period_until=period_until, now=now
        )
        results[request.entry_key] = summary
        stats = _count(stats, summary, outcome)
    return results, stats


def _run(
    summariser: Summariser,
    fallback: Summariser,
    requests: list[SummaryRequest],
    workers: int,
    deadline: float | None,
    clock: Callable[[], float],
) -> list[Summary | SummaryError]:
    """Summarise ``requests`` on up to ``workers`` threads, giving up at ``deadline``.

    The threads are daemons: a call still hanging at the deadline is abandoned (it ends by
    its own timeout) and neither holds up the digest nor the process's exit.
    """
    extractive = isinstance(summariser, type(fallback))
    if extractive:
        return [summariser.summarise(r) for r in requests]
    results: list[Summary | SummaryError | None] = [
        fallback.summarise(r) if r.own_text_chars < MIN_LLM_TEXT else None for r in requests
    ]  # next to no text of their own: the facts say it all, no request
    pending = [i for i, r in enumerate(results) if r is None]
    done = threading.Condition()

    def one(request: SummaryRequest) -> Summary | SummaryError:
        if deadline is not None and clock() >= deadline:
            return OutOfTime(_out_of_time(summariser))
        try:
            return summariser.summarise(request, deadline=deadline)
        except SummaryError as exc:
            log.warning("summary of %s failed: %s", request.entry_key, exc)
            return exc

    def work() -> None:
        while True:
            with done:
                if not pending:
                    return
                i = pending.pop(0)
            outcome = one(requests[i])
            with done:
                results[i] = outcome
                done.notify_all()

    for n in range(min(max(1, workers), len(pending))):
        threading.Thread(target=work, name=f"kvmarm-summary-{n}", daemon=True).start()
    with done:
        while any(r is None for r in results):
            left = None if deadline is None else deadline - clock()
            if left is not None and left <= 0:
                break
            done.wait(left)
        pending.clear()  # nothing new starts after the deadline
        final = list(results)
    late = sum(r is None for r in final)
    if late:
        log.warning("LLM time budget used up: %d entries summarised extractively", late)
    return [r if r is not None else OutOfTime(_out_of_time(summariser)) for r in final]


def _out_of_time(summariser: Summariser) -> str:
    budget = getattr(summariser, "budget", None) or 0
    return f"the LLM time budget of {budget:g} s for this digest was used up"


def _settle(
    request: SummaryRequest,
    outcome: Summary | SummaryError,
    fallback: Summariser,
) -> Summary:
    """Accept a grounded LLM summary; otherwise the extractive one, saying why."""
    if isinstance(outcome, SummaryError):
        summary = _fallback(
            request, fallback, f"LLM summary unavailable ({outcome})", outcome.usage
        )
        return replace(summary, retry=True)
    if outcome.source != "llm":
        return outcome
    problems = check_summary(outcome, request) + check_claims(outcome, request)
    if problems:
        log.warning("summary of %s rejected: %s", request.entry_key, "; ".join(problems))
        return _fallback(
            request, fallback, "LLM summary rejected: " + "; ".join(problems), outcome.usage
        )
    if not request.has_history and outcome.background:
        outcome = replace(outcome, background=None)  # nothing earlier to go on: never invent
    return outcome


def _fallback(
    request: SummaryRequest, fallback: Summariser, note: str, usage: Usage | None
) -> Summary:
    return replace(fallback.summarise(request), note=note, usage=usage)


def _record_usage(db, request, summariser, summary: Summary, outcome, now: datetime) -> None:
    usage = summary.usage
    if usage is None:
        return
    result = "error" if isinstance(outcome, SummaryError) else "ok"
    if result == "ok" and summary.source != "llm":
        result = "rejected"
    store.record_usage(
        db,
        entry_key=request.entry_key,
        model=summariser.name,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        prompt_chars=usage.prompt_chars,
        outcome=result,
        now=now,
    )


def _count(stats: RunStats, summary: Summary, outcome: Summary | SummaryError) -> RunStats:
    usage = summary.usage or Usage(0, 0, 0, 0)
    return replace(
        stats,
        llm=stats.llm + (summary.source == "llm"),
        extractive=stats.extractive + (summary.source != "llm"),
        fallbacks=stats.fallbacks + (summary.note is not None),
        out_of_time=stats.out_of_time + isinstance(outcome, OutOfTime),
        prompt_tokens=stats.prompt_tokens + usage.prompt_tokens,
        completion_tokens=stats.completion_tokens + usage.completion_tokens,
    )


def _cache_key(request: SummaryRequest, summariser: Summariser) -> store.CacheKey:
    return store.CacheKey(
        entry_key=request.entry_key,
        last_msgid=request.last_msgid,
        lang=request.lang,
        model=summariser.name,
        prompt_version=summariser.prompt_version,
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
        retry=summary.retry,
    )


def _from_stored(stored: store.StoredSummary) -> Summary:
    return Summary(
        background=stored.background,
        this_week=stored.this_week,
        source=stored.source,
        model=stored.model,
        cited=stored.cited,
        note=stored.note,
        retry=stored.retry,
    )
