"""Derivation that one poison mail cannot break.  Pure.

``derive`` is meant never to raise; if it still does (a bug meeting an odd mail), the mails
that make it raise are found and set aside with the reason, and everything else is derived.
Without this, every later ingest would fail the same way, because derivation always
covers the stored mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ingest.records import Message
from ingest.threads import group_threads

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ROUNDS = 20  # mails set aside one culprit at a time; more means something is badly wrong
NARROW_TRIES = 40  # mails of a failing thread tried one by one before setting all of it aside


@dataclass(frozen=True)
class SafeDerived(Generic[T]):
    derived: T
    set_aside: dict[str, str]  # msgid → why it was left out of derivation


class DerivationError(Exception):
    """Derivation kept failing after setting aside MAX_ROUNDS mails."""


def derive_safely(
    messages: Sequence[Message], derive_fn: Callable[[Sequence[Message]], T]
) -> SafeDerived[T]:
    """``derive(messages)``, minus the mails that make it raise (set aside with a reason)."""
    aside: dict[str, str] = {}
    remaining = list(messages)
    for _round in range(MAX_ROUNDS):
        try:
            return SafeDerived(derive_fn(remaining), aside)
        except Exception as exc:
            log.debug("derivation failed; looking for the mail that breaks it", exc_info=True)
            reason = f"derivation error: {type(exc).__name__}: {exc}"
            culprits = _culprits(remaining, derive_fn)
            for msgid in culprits:
                aside[msgid] = reason
            remaining = [m for m in remaining if m.msgid not in culprits]
    raise DerivationError(f"derivation still fails after setting aside {len(aside)} mails")


def _fails(messages: Sequence[Message], derive_fn: Callable[[Sequence[Message]], object]) -> bool:
    try:
        derive_fn(messages)
    except Exception:
        return True
    return False


def _culprits(messages: list[Message], derive_fn) -> set[str]:
    """The smallest set of mails found whose removal is needed: the thread that first makes
    a growing prefix of threads fail, narrowed to one mail of it when one is enough."""
    groups = _groups(messages)
    lo, hi = 0, len(groups)  # invariant: groups[:lo] derive, groups[:hi] fail
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fails([m for g in groups[:mid] for m in g], derive_fn):
            hi = mid
        else:
            lo = mid
    guilty = groups[hi - 1]
    # Narrow within the thread alone when it fails alone (cheap), else with the threads
    # before it, trying a bounded number of mails.
    context = [] if _fails(guilty, derive_fn) else [m for g in groups[: hi - 1] for m in g]
    for m in guilty[:NARROW_TRIES]:
        if not _fails(context + [x for x in guilty if x is not m], derive_fn):
            return {m.msgid}
    return {m.msgid for m in guilty}


def _groups(messages: list[Message]) -> list[list[Message]]:
    """Mails by thread (each mail alone if threading itself fails), in a stable order."""
    by_id = {m.msgid: m for m in messages}
    try:
        threads = group_threads(by_id.values())
        groups = [[by_id[i] for i in t.msgids if i in by_id] for t in threads]
    except Exception:
        groups = [[m] for m in sorted(messages, key=lambda m: m.msgid)]
    placed = {m.msgid for g in groups for m in g}
    groups.extend([m] for m in messages if m.msgid not in placed)
    return [g for g in groups if g]
