"""What a maintainer acts on: every digest entry in exactly one bucket, as of the period end.

Buckets, in the order they are shown::

    applied       versions applied or pulled during the period (who, where, commit)
    new_series    first postings
    new_versions  vN posted in the period (previous version; patches carrying reviews over)
    waiting       the review queue (storage/queue.py): posted ≥ 7 days before the period end,
                  not done, not idle, with patches lacking a counted Reviewed/Acked/Tested-by
    discussion    every other thread or series with mail in the period, most active first
                  (the waiting queue: active this period first, then the longest waiting)
    reports       bot reports (syzbot, kernel test robot, build/boot failures) and mails about
                  regressions, linked to the series they are about when it is known

An entry is tested against the rules in the order applied, reports, new_series,
new_versions, waiting, discussion and goes to the first that holds (a bot's patch is a
report; a v2 posted and applied in one week is applied).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BUCKETS = ("applied", "new_series", "new_versions", "waiting", "discussion", "reports")
_DONE_STATES = ("applied", "pulled", "partially-applied")
_REPORT_RE = re.compile(
    r"regress|\bBUG\b|\bWARNING\b|(?-i:\b(?:KASAN|UBSAN|KCSAN)\b)|syzbot|lockdep|\boops\b|\bpanic|"
    r"\bcrash|splat|\bhang|\bfail(?:s|ed|ing|ure)?\b|FAILed|build (?:error|warning)|"
    r"\bwarning:|\berror:|\[\w+(?:-\w+)*:[\w./-]+ \d+/\d+\]",  # "[kvmarm:next 29/32] …"
    re.I,
)


_PATCH_RE = re.compile(r"^\s*\[(?:PATCH|RFC)\b", re.I)


def is_report_title(title: str) -> bool:
    """A subject that reports a problem: regression, BUG/WARNING/KASAN splat, build or boot
    failure, a robot's "[tree:branch n/N] file: warning: …" — not a patch about one."""
    if _PATCH_RE.match(title):
        return False
    return bool(_REPORT_RE.search(title))


def bucket_of(entry: dict, waiting: set[str], bots: set[str]) -> str:
    """The one bucket ``entry`` belongs to (module docstring: the rules and their order).

    ``waiting``: series ids in the review queue as of the period end; ``bots``: addresses of
    robots (an entry they started is a report).
    """
    if entry["kind"] == "series":
        if _applied_in_period(entry):
            return "applied"
        if entry["author"] and entry["author"]["email"] in bots:
            return "reports"
        versions = entry["versions"]
        if versions and versions[0]["in_period"]:
            return "new_series"
        if len(versions) > 1 and any(v["in_period"] for v in versions[1:]):
            return "new_versions"
        if entry["id"] in waiting:
            return "waiting"
        return "discussion"
    if entry["by_bot"] or is_report_title(entry["title"]):
        return "reports"
    return "discussion"


def _applied_in_period(entry: dict) -> bool:
    status = entry["status"] or {}
    if status.get("state") not in _DONE_STATES:
        return False
    return any(e["in_period"] for e in status["evidence"])


def assign_buckets(
    entries: Iterable[dict], waiting: dict[str, int], bots: set[str]
) -> dict[str, list[str]]:
    """Set ``bucket`` and ``number`` (1.. within its bucket) on each entry; the buckets as
    lists of entry keys in the order they are shown.

    ``waiting``: series id → days waiting (the queue sorts longest waiting first).
    """
    grouped: dict[str, list[dict]] = {name: [] for name in BUCKETS}
    for e in entries:
        e["bucket"] = bucket_of(e, set(waiting), bots)
        grouped[e["bucket"]].append(e)
    grouped["waiting"].sort(  # active this period first, then the longest waiting
        key=lambda e: (-e["mails_this_week"], -waiting.get(e["id"], 0), e["key"])
    )
    grouped["applied"].sort(key=lambda e: (_applied_date(e), e["key"]))
    for items in grouped.values():
        for number, e in enumerate(items, start=1):
            e["number"] = number
    return {name: [e["key"] for e in items] for name, items in grouped.items()}


def _applied_date(entry: dict) -> str:
    dates = [e["date"] or "" for e in entry["status"]["evidence"] if e["in_period"]]
    return min(dates) if dates else ""
