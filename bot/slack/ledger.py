"""One Slack write sent exactly once, for the digest's parts (bot/slack/parts.py) and live
deliveries (bot/slack/deliver.py): the write is recorded before its call (``pending``) and
after it (sent, with its ts).  A failure whose outcome is unknown (5xx, timeout, lost
connection) leaves it pending, one Slack surely did not take is recorded as failed.  Before
a write is sent again after an unknown outcome — a retry in this run, or a write an earlier
run left pending (the process died during the call) — it is looked up in Slack; a lookup
that cannot tell raises its own error and nothing is sent blindly.

What a record is and what a failure means for the run are the callers': ``Entry`` writes
their own table (post_parts; deliveries and series_cards), the exceptions carry the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.slack.calls import CallFailed, Refused, Unknown


class Entry(Protocol):
    """One write's record in a caller's ledger table."""

    def pending(self) -> None:
        """Record that the call is about to be made."""

    def sent(self, ts: str, *, found: bool) -> None:
        """Record it done (``found``: seen in Slack by a lookup, not answered to a call)."""

    def failed(self, exc: CallFailed, *, uncertain: bool) -> None:
        """Record a failed try; ``uncertain``: this or an earlier try's outcome is unknown,
        so the write may be there (keep it pending, to be looked up)."""


@dataclass(frozen=True, slots=True)
class Retry:
    delays: tuple[float, ...]  # seconds before the 2nd, 3rd, … try
    sleep: Callable[[float], None]


ONCE = Retry((), lambda _seconds: None)


def write_once(
    entry: Entry,
    *,
    send: Callable[[], str],
    find: Callable[[], str | None] = lambda: None,
    recover: Callable[[], str | None] | None = None,
    retry: Retry = ONCE,
    on_retry: Callable[[CallFailed, int, int], None] = lambda _exc, _try, _tries: None,
) -> str:
    """``send`` once: its ts (or the ts a lookup found).

    ``recover``: the lookup of a write an earlier run left pending (None: it was not);
    ``find``: the lookup after a failed try whose outcome is unknown, before the next try.
    Raises ``Refused`` at once and the last ``CallFailed`` when the tries are used up, with
    ``entry`` already saying what is known; lookups raise what they raise.  Once one try's
    outcome is unknown the write stays pending even if a later try is surely refused: that
    earlier try may still have arrived.
    """
    if recover is not None and (found := recover()):
        entry.sent(found, found=True)
        return found
    tries = len(retry.delays) + 1
    uncertain = False
    for attempt in range(tries):
        entry.pending()
        try:
            ts = send()
        except CallFailed as exc:
            uncertain = uncertain or isinstance(exc, Unknown)
            entry.failed(exc, uncertain=uncertain)
            if isinstance(exc, Refused) or attempt + 1 == tries:
                raise
            on_retry(exc, attempt + 1, tries)
            retry.sleep(retry.delays[attempt])
            if uncertain and (found := find()):
                entry.sent(found, found=True)
                return found
            continue
        entry.sent(ts, found=False)
        return ts
    raise AssertionError("unreachable")  # pragma: no cover
