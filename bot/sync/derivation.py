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

import gc
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

from ingest.applies import shows_applier
from ingest.components import Keys, chain_keys, group_components, keys_by_message
from ingest.derive import (
    Chains,
    Derivation,
    DeriveContext,
    chain_postings,
    complete,
    derive_all,
    derive_context,
    derive_postings,
    finish_series,
    pull_candidates,
)
from ingest.postings import Draft
from ingest.pulls import PullCandidate, mark_pulled, pull_entries
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
    replace_components,
    replace_threads,
    save_derived,
    set_aside_msgids,
    touch_last_activity,
    touched_components,
    write_series,
)
from storage.levels import (
    DraftPlace,
    bodies_of,
    candidates_titled,
    chains_holding,
    delete_drafts,
    delete_entries,
    digest_last,
    drafts_of_chains,
    drafts_of_units,
    entries_titled,
    heads_of,
    marks_of,
    places_of,
    replace_candidates,
    replace_marks,
    same_body,
    same_head,
    save_appliers,
    save_candidates,
    save_chain_keys,
    save_drafts,
    save_entries,
    stored_appliers,
    stored_chaining,
    summary_digest,
)
from storage.messages import (
    count_messages,
    load_messages,
    load_messages_by_id,
)
from storage.state import get_state, set_state

log = logging.getLogger(__name__)

# Bump when derivation rules, or what it keeps for the next run (storage/levels.py: summaries,
# digests, keys), change: the derived facts are then rebuilt by the next run.
DERIVE_VERSION = 10


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
    with writing(db, "kvmarm derive"), _without_cycle_collection():
        if not full and messages is None and _incremental_ready(db):
            try:
                with transaction(db):  # a savepoint: a failure leaves nothing half-written
                    return _derive_part(db, now())
            except Exception as exc:  # a bug meeting odd mail: the full derivation finds it
                log.debug("incremental derivation failed", exc_info=True)
                log.warning("incremental derivation failed (%s); deriving everything", exc)
        return _derive_everything(db, messages, now())


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Derivation allocates many small objects and frees them by reference counting; the
    cycle collector's full passes over them cost a third of an incremental derivation at
    10x and find nothing.  It runs again (and collects anything left) afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    shape_of = _shapes(done.chains, range(len(done.chains.chains)))
    series_of = {v.key: s.id for s in done.derived.series for v in s.versions}
    places = [
        DraftPlace(key, unit_of[key], chain_of[key], series_of[key], hashes[key], shape_of[key])
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
    arrived = load_messages_by_id(db, queued)
    new = keys_by_message(arrived)
    units = touched_components(db, new.values()) | components_of(db, queued)
    part = set(component_members(db, units)) | set(queued)
    rest = load_messages_by_id(db, part - set(queued))
    loaded = arrived + rest
    keys = new | keys_by_message(rest)
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
        widened = set(component_members(db, more)) - part
        part |= widened
        more_mail = load_messages_by_id(db, widened)
        loaded += more_mail
        keys |= keys_by_message(more_mail)
    unit_of = _component_ids(keys)
    level_one = derive_postings([m for m in loaded if m.msgid not in aside], context)

    # Level two.  A posting whose head changed (new, gone, or chained differently) is
    # chained again with every posting of the chains it is, was or may be in.  A series
    # none of whose postings changed head keeps its chaining: it is finished again, from
    # its stored chaining, when one of its postings' bodies changed (a review, an apply).
    fresh = {s["key"]: s for s in level_one.summaries}
    replaced = {d.place.key: d for d in drafts_of_units(db, units)}
    dropped = replaced.keys() - fresh.keys()
    digests = {key: summary_digest(summary) for key, summary in fresh.items()}
    moved = {k for k in fresh if k not in replaced or not same_head(replaced[k].digest, digests[k])}
    moved_drafts = unpack([fresh[k] for k in moved]).drafts
    moved_keys = _chain_keys(moved_drafts, fresh)
    chains = chains_holding(db, moved_keys.values())
    chains |= {replaced[k].place.chain for k in (moved | dropped) & replaced.keys()}
    stored = {d.place.key: d for d in drafts_of_chains(db, chains)}
    before = stored | replaced
    heads = {k: d.head for k, d in stored.items() if k not in dropped}
    heads |= {k: fresh[k] for k in fresh if k in heads or k in moved}
    chained = chain_postings(list(heads.values()))
    kept_heads = [d for d in chained.unpacked.drafts if d.first.msgid not in moved_keys]
    held = moved_keys | _chain_keys(kept_heads, heads)  # a head's keys: moved ones known
    chain_of = _chain_ids(held)

    # Series to finish again: a posting's summary changed, or the series' chaining did.
    every = range(len(chained.chains))
    shape_of = _shapes(chained, every)
    changed = {k for k in fresh if k not in replaced or replaced[k].digest != digests[k]}
    # Only its last mail's date moved on (a reply saying nothing the facts count): the
    # series' last activity is updated, nothing is finished again for it.
    later = {
        k
        for k in changed & replaced.keys()
        if same_head(d := replaced[k].digest, digests[k])
        and same_body(d, digests[k])
        and _not_earlier(digest_last(digests[k]), digest_last(d))
    }
    refresh = changed - later
    dirty = {
        i
        for i in every
        for d in chained.chains[i][0]
        for key in [d.first.msgid]
        if key in refresh or key not in before or before[key].place.shape != shape_of[key]
    }
    complete(chained, _bodies(db, chained, dirty, fresh), dirty)
    kept = _stored_series(db, {replaced[k].place.series_id for k in refresh - heads.keys()}, fresh)
    # In a series kept as chained, the versions before the first whose summary changed
    # keep their patches (what they carry comes from earlier versions only).
    unmoved = _before_first(kept, refresh)

    # Pull requests: the titles whose candidates or shortlog lines changed.
    redone = {d.first.msgid for i in dirty for d in chained.chains[i][0]}
    redone |= _keys(kept) - unmoved
    candidates = pull_candidates(chained, dirty)
    candidates += [c for c in pull_candidates(kept, kept.completed) if c.key not in unmoved]
    titles = replace_candidates(db, redone | dropped, candidates)
    titles |= delete_entries(db, moved | dropped)  # shortlog lines are in the head
    entries = pull_entries(moved_drafts)
    save_entries(db, entries)
    titles |= {e.title for e in entries}
    remarked = {key for key, _n in _remark(db, titles)}
    by_chain = {id(d): i for i, (members, _how) in enumerate(chained.chains) for d in members}
    also = {by_chain[id(chained.unpacked.by_key[k])] for k in remarked & heads.keys()} - dirty
    complete(chained, _bodies(db, chained, also, fresh), also)
    others = remarked - heads.keys() - _keys(kept) - dropped
    extra = _stored_series(db, {p.series_id for p in places_of(db, others)}, fresh)
    finishing = [(chained, dirty | also), (kept, kept.completed), (extra, extra.completed)]
    marks = marks_of(db, [d.first.msgid for c, which in finishing for d in _members(c, which)])
    series = [s for c, which in finishing for s in finish_series(c, marks, which)]

    # Write: the series, the part's threads and memberships, the bookkeeping.
    finished = {v.key for s in series for v in s.versions}
    old = {key: d.place for key, d in before.items()}
    old |= {p.key: p for p in places_of(db, (_keys(kept) | _keys(extra)) - old.keys())}
    old_hashes = {key: p.hash for key, p in old.items() if key in dropped or key in finished}
    old_series = {p.series_id for key, p in old.items() if key in old_hashes}
    # ... and their versions' rows too, unless a pull-request mark on them changed.
    same = _before_first(kept, refresh | remarked)
    hashes = write_series(db, series, old_hashes=old_hashes, old_series=old_series, same=same)
    moved_on: dict[str, datetime] = {}
    for k in later - finished:
        if (when := digest_last(digests[k])) is not None:
            sid = old[k].series_id
            moved_on[sid] = max(when, moved_on.get(sid, when))
    touch_last_activity(db, moved_on)
    series_of = {v.key: s.id for s in series for v in s.versions}
    memberships = [
        (msgid, root, _series_of(key, series_of, old), key)
        for msgid, root in level_one.thread_of.items()
        for key in [level_one.posting_of.get(msgid)]
    ]
    replace_threads(db, part, level_one.threads, memberships, set_aside={}, now=now)
    move_memberships(
        db,
        {
            key: sid
            for key, sid in series_of.items()
            if key not in fresh and old[key].series_id != sid
        },
    )
    delete_drafts(db, dropped)
    places = [
        DraftPlace(
            key,
            unit_of[key] if key in fresh else old[key].unit,
            chain_of[key],
            series_of[key] if key in finished else old[key].series_id,
            hashes[key] if key in finished else old[key].hash,
            shape_of[key],
        )
        for key in heads
    ]
    for key in (fresh.keys() | finished) - heads.keys():  # series finished from storage
        p = old[key]
        places.append(replace(p, unit=unit_of.get(key, p.unit), hash=hashes.get(key, p.hash)))
    save_drafts(db, [p for p in places if p != old.get(p.key) or p.key in changed], fresh, digests)
    save_chain_keys(db, {key: held[key] for key in moved})  # a kept head holds what it held
    replace_components(db, units, part, Components(unit_of, keys))
    finish_part(db, part)
    _save_context(db, context)
    log.debug(
        "derived %d mails of %d units; chained %d postings of %d chains, finished %d series",
        len(part),
        len(units),
        len(heads),
        len(chains),
        len(series),
    )
    return len(part)


def _series_of(
    key: str | None, series_of: dict[str, str], old: dict[str, DraftPlace]
) -> str | None:
    if key is None:
        return None
    return series_of[key] if key in series_of else old[key].series_id


def _shapes(chains: Chains, which: Iterable[int]) -> dict[str, str]:
    """Posting key → the shape of its series' chaining."""
    return {
        d.first.msgid: shape
        for i in which
        for shape in [chains.shape(i)]
        for d in chains.chains[i][0]
    }


def _not_earlier(new: datetime | None, old: datetime | None) -> bool:
    return old is None or (new is not None and new >= old)


def _before_first(chains: Chains, keys: Collection[str]) -> set[str]:
    """Postings of each series before the first one in ``keys``."""
    out: set[str] = set()
    for members, _how in chains.chains:
        for d in members:
            if d.first.msgid in keys:
                break
            out.add(d.first.msgid)
    return out


def _keys(chains: Chains) -> set[str]:
    return {d.first.msgid for members, _how in chains.chains for d in members}


def _members(chains: Chains, which: Iterable[int]) -> list[Draft]:
    return [d for i in which for d in chains.chains[i][0]]


def _stored_series(db: Database, series: Collection[str], fresh: dict[str, Summary]) -> Chains:
    """Series as stored (postings, their order and versions, how they were chained),
    completed: to finish again without chaining again."""
    stored = stored_chaining(db, series)
    keys = [key for members, _how in stored for key, _version in members]
    heads = {k: h for k, h in heads_of(db, set(keys) - fresh.keys()).items()}
    heads |= {k: fresh[k] for k in keys if k in fresh}
    u = unpack(list(heads.values()))
    chains: list[tuple[list[Draft], list[str]]] = []
    for members, how in stored:
        drafts = []
        for key, version in members:
            d = u.by_key[key]
            if d.explicit_version is None and version != 1:
                d.resend_of = version  # numbered when chained (series._number_unlabelled_resends)
            drafts.append(d)
        chains.append((drafts, how))
    out = Chains(u, chains)
    everything = range(len(chains))
    complete(out, _bodies(db, out, everything, fresh), everything)
    return out


def _bodies(
    db: Database, chains: Chains, which: Iterable[int], fresh: dict[str, Summary]
) -> dict[str, Summary]:
    keys = {d.first.msgid for i in which for d in chains.chains[i][0]}
    return bodies_of(db, keys - fresh.keys()) | {k: fresh[k] for k in keys & fresh.keys()}


def _remark(db: Database, titles: Collection[str]) -> set[tuple[str, int]]:
    """Recompute the pull-request marks of ``titles`` from the stored candidates and
    shortlog lines; the (posting, patch) whose mark changed."""
    entries = entries_titled(db, titles)
    named = {e.title for e in entries}
    candidates: list[PullCandidate] = candidates_titled(db, named)
    marks = mark_pulled(entries, candidates)
    title_of = {(c.key, c.n): c.title for c in candidates}
    return replace_marks(db, titles, marks, title_of)


def _chain_keys(drafts: Iterable[Draft], summaries: dict[str, Summary]) -> dict[str, Keys]:
    """Each posting's second-level keys."""
    out = {}
    for d in drafts:
        key = d.first.msgid
        out[key] = chain_keys(d, summaries[key]["replied"].values())
    return out


def _chain_ids(held: dict[str, Keys]) -> dict[str, str]:
    """Posting key → its chain (second-level component): the smallest key in it."""
    groups = group_components(held)
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
