"""Keeping the derived facts current: a full derivation, or only what new mail touches.

Derivation has two levels (ingest/derive.py).  New mail (``derive_queue``) re-derives:
1. level one, over mails: the *units* (ingest/components.py: threads, send runs) the new
   mail joins, merged with it — threads, postings, what replies say of each patch;
2. level two, over stored posting summaries, never mail: the *chains* (second-level
   components) holding a posting of those units or sharing a key with a new one — series,
   carried trailers, statuses — and pull-request marks title by title, for the titles
   whose candidates or shortlog lines changed (plus the series a changed mark lands in).
Rows whose content did not change (by hash, per version) are not rewritten.  The result is
the same as a full derivation; tests/test_incremental.py compares both month by month.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from functools import partial

from ingest.applies import shows_applier
from ingest.components import Keys, chain_keys, group_components, keys_by_message
from ingest.derive import (
    Derivation,
    DeriveContext,
    PullCandidate,
    chain_postings,
    derive_all,
    derive_context,
    derive_postings,
    finish_series,
    mark_pulled,
    pull_candidates,
    pull_entries,
)
from ingest.postings import Draft
from ingest.records import Message
from ingest.setaside import derive_safely
from ingest.summaries import Summary, unpack
from storage.db import Database, transaction, writing
from storage.derived import (
    CONTEXT_KEY,
    Components,
    component_members,
    components_of,
    components_ready,
    comps_of_notices_by,
    facts_outdated,
    finish_part,
    move_memberships,
    queued_msgids,
    replace_threads,
    save_components,
    save_derived,
    set_aside_msgids,
    touched_components,
    write_series,
)
from storage.levels import (
    DraftPlace,
    StoredDraft,
    candidates_titled,
    chains_holding,
    chains_of_drafts,
    delete_candidates,
    delete_drafts,
    delete_entries,
    drafts_of_chains,
    drafts_of_units,
    entries_titled,
    marks_of,
    replace_marks,
    save_appliers,
    save_candidates,
    save_chain_keys,
    save_drafts,
    save_entries,
    stored_appliers,
)
from storage.messages import (
    count_messages,
    load_messages,
    load_messages_by_id,
)
from storage.sqlbits import delete_in
from storage.state import get_state, set_state

log = logging.getLogger(__name__)

# Bump when derivation rules change: stored derived facts are then rebuilt on the next run.
DERIVE_VERSION = 5


def facts_out_of_date(db: Database) -> bool:
    """The derived facts do not reflect every stored mail (or older rules made them)."""
    return facts_outdated(db, DERIVE_VERSION)


def rebuild_derived(
    db: Database,
    messages: list[Message] | None = None,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    full: bool = False,
) -> int:
    """Bring threads/series/trailers up to date with the stored mail, in one write
    transaction with reading it.  Only what queued mail touches is re-derived, unless
    ``full`` (or the rules or the bookkeeping are not current): then everything, from
    ``messages`` when given (a database holding exactly those).  Mails whose derivation
    raises are set aside with the reason.  Returns the number of mails derived again."""
    with writing(db, "kvmarm derive"):
        if not full and messages is None and _incremental_ready(db):
            try:
                with transaction(db):  # a savepoint: a failure leaves nothing half-written
                    return _derive_part(db, now())
            except Exception as exc:  # a bug meeting odd mail: the full derivation finds it
                log.debug("incremental derivation failed", exc_info=True)
                log.warning("incremental derivation failed (%s); deriving everything", exc)
        return _derive_everything(db, messages, now())


def _incremental_ready(db: Database) -> bool:
    return (
        get_state(db, "derive_version") == DERIVE_VERSION
        and components_ready(db)
        and get_state(db, CONTEXT_KEY) is not None
    )


# ---- everything ---------------------------------------------------------------------------


def _derive_everything(db: Database, messages: list[Message] | None, now: datetime) -> int:
    if messages is None or len(messages) != count_messages(db):
        messages = list(load_messages(db))
    context = derive_context(messages)
    safe = derive_safely(messages, derive_fn=partial(derive_all, context=context))
    for msgid, reason in sorted(safe.set_aside.items()):
        log.warning("set aside from derivation: %s: %s", msgid, reason)
    done = safe.derived
    keys = keys_by_message(messages)
    unit_of = _component_ids(keys)
    hashes = save_derived(
        db,
        done.derived,
        version=DERIVE_VERSION,
        now=now,
        set_aside=safe.set_aside,
        components=Components(unit_of, keys),
    )
    _save_levels(db, done, unit_of, hashes)
    save_appliers(db, (), {m.msgid: m.sender.email for m in messages if shows_applier(m)})
    _save_context(db, context)
    return len(messages)


def _save_levels(
    db: Database, done: Derivation, unit_of: dict[str, str], hashes: dict[str, str]
) -> None:
    """What incremental derivation needs of a full one (storage/levels.py)."""
    summaries = {s["key"]: s for s in done.postings.summaries}
    held = _chain_keys(done.chains.unpacked.drafts, summaries)
    chain_of = _chain_ids(held)
    series_of = {v.key: s.id for s in done.derived.series for v in s.versions}
    places = [
        DraftPlace(key, unit_of[key], chain_of[key], series_of[key], hashes[key])
        for key in summaries
    ]
    save_drafts(db, places, summaries)
    save_chain_keys(db, held)
    save_candidates(db, done.candidates)
    save_entries(db, done.entries)
    title_of = {(c.key, c.n): c.title for c in done.candidates}
    replace_marks(db, (), done.marks, title_of)


# ---- a part -------------------------------------------------------------------------------


def _derive_part(db: Database, now: datetime) -> int:
    """Re-derive what the queued mail touches (module docstring); nothing else."""
    queued = queued_msgids(db)
    if not queued:
        return 0
    aside = set_aside_msgids(db)
    new = keys_by_message(load_messages_by_id(db, queued))
    units = touched_components(db, new.values()) | components_of(db, queued)
    part = set(component_members(db, units)) | set(queued)
    loaded = load_messages_by_id(db, part)
    keys = keys_by_message(loaded)
    queued_set = set(queued)
    save_appliers(
        db,
        queued_set,
        {m.msgid: m.sender.email for m in loaded if m.msgid in queued_set and shows_applier(m)},
    )
    # Who applies patches (whose notices count) changed: re-derive their notices' units too.
    context = DeriveContext(stored_appliers(db))
    more = _context_changes(db, get_state(db, CONTEXT_KEY), context) - units
    if more:
        units |= more
        part |= set(component_members(db, more))
        loaded = load_messages_by_id(db, part)
        keys = keys_by_message(loaded)
    unit_of = _component_ids(keys)
    level_one = derive_postings([m for m in loaded if m.msgid not in aside], context)

    # Level two: the chains the part's postings are in, were in, or share a key with.
    fresh = {s["key"]: s for s in level_one.summaries}
    fresh_keys = _chain_keys(unpack(list(fresh.values())).drafts, fresh)
    replaced = drafts_of_units(db, units)
    chains = chains_holding(db, {k for held in fresh_keys.values() for k in held})
    chains |= {d.chain for d in replaced}
    before = _by_key([*drafts_of_chains(db, chains), *replaced])
    gone = {d.key for d in replaced} | fresh.keys()
    summaries = {key: d.summary for key, d in before.items() if key not in gone} | fresh
    chained = chain_postings(list(summaries.values()))
    held = _chain_keys(chained.unpacked.drafts, summaries)
    chain_of = _chain_ids(held)

    # Pull requests: the titles whose candidates or shortlog lines changed.
    candidates, entries = pull_candidates(chained), pull_entries(chained)
    titles = delete_candidates(db, before.keys()) | delete_entries(db, before.keys())
    save_candidates(db, candidates)
    save_entries(db, entries)
    titles |= {c.title for c in candidates} | {e.title for e in entries}
    changed = _remark(db, titles)
    extra_chains = chains_of_drafts(db, {k for k, _n in changed} - summaries.keys() - before.keys())
    extra = drafts_of_chains(db, extra_chains)
    finishing = [chained]
    if extra:
        finishing.append(chain_postings([d.summary for d in extra]))
    marks = marks_of(db, [*summaries, *(d.key for d in extra)])
    series = [s for c in finishing for s in finish_series(c, marks)]

    # Write: the part's threads and memberships, the series, the bookkeeping.
    old_hashes = {key: d.hash for key, d in before.items()}
    old_hashes |= {d.key: d.hash for d in extra}
    old_series = {d.series_id for d in before.values()} | {d.series_id for d in extra}
    hashes = write_series(db, series, old_hashes=old_hashes, old_series=old_series)
    series_of = {v.key: s.id for s in series for v in s.versions}
    memberships = [
        (msgid, root, series_of.get(key) if key else None, key)
        for msgid, root in level_one.thread_of.items()
        for key in [level_one.posting_of.get(msgid)]
    ]
    replace_threads(db, part, level_one.threads, memberships, set_aside={}, now=now)
    move_memberships(
        db,
        {
            key: sid
            for key, sid in series_of.items()
            if key not in fresh and before.get(key, _NOWHERE).series_id != sid
        },
    )
    delete_drafts(db, [d.key for d in replaced if d.key not in summaries])
    places = [
        DraftPlace(
            key,
            unit_of[key] if key in fresh else before[key].unit,
            chain_of[key],
            series_of[key],
            hashes[key],
        )
        for key in summaries
    ]
    places += [DraftPlace(d.key, d.unit, d.chain, d.series_id, hashes[d.key]) for d in extra]
    save_drafts(db, places, fresh)
    save_chain_keys(db, held)
    delete_in(db, "DELETE FROM derive_keys WHERE comp IN ({})", units)
    delete_in(db, "DELETE FROM derive_components WHERE msgid IN ({})", part)
    save_components(db, Components(unit_of, keys))
    finish_part(db, part)
    _save_context(db, context)
    log.debug(
        "derived %d mails of %d units and %d postings of %d chains for %d new",
        len(part),
        len(units),
        len(summaries) + len(extra),
        len(chains) + len(extra_chains),
        len(queued),
    )
    return len(part)


_NOWHERE = StoredDraft("", "", "", "", "", {})


def _by_key(drafts: Iterable[StoredDraft]) -> dict[str, StoredDraft]:
    return {d.key: d for d in drafts}


def _remark(db: Database, titles: Collection[str]) -> set[tuple[str, int]]:
    """Recompute the pull-request marks of ``titles`` from the stored candidates and
    shortlog lines; the (posting, patch) whose mark changed."""
    entries = entries_titled(db, titles)
    named = {e.title for e in entries}
    candidates: list[PullCandidate] = candidates_titled(db, named)
    marks = mark_pulled(entries, candidates)
    title_of = {(c.key, c.n): c.title for c in candidates}
    return replace_marks(db, titles, marks, title_of)


def _chain_keys(
    drafts: Iterable[Draft], summaries: dict[str, Summary]
) -> dict[str, frozenset[str]]:
    """Each posting's second-level keys."""
    out = {}
    for d in drafts:
        key = d.first.msgid
        out[key] = chain_keys(d, summaries[key]["replied"].values())
    return out


def _chain_ids(held: dict[str, frozenset[str]]) -> dict[str, str]:
    """Posting key → its chain (second-level component): the smallest key in it."""
    groups = group_components({key: Keys(keys) for key, keys in held.items()})
    return {key: group[0] for group in groups for key in group}


def _component_ids(keys: dict[str, Keys]) -> dict[str, str]:
    """Message-ID → its unit's id (the unit's smallest Message-ID)."""
    return {msgid: group[0] for group in group_components(keys) for msgid in group}


def _save_context(db: Database, context: DeriveContext) -> None:
    set_state(db, CONTEXT_KEY, {"appliers": sorted(context.appliers)})


def _context_changes(db: Database, stored: dict, context: DeriveContext) -> set[str]:
    """Units whose facts the change of context can change: notices whose sender became
    (or ceased to be) one who applies patches."""
    changed = set(stored.get("appliers", ())) ^ context.appliers
    return comps_of_notices_by(db, changed) if changed else set()
