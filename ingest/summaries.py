"""Posting summaries: what the second level of derivation needs of one posting.  Pure.

Derivation has two levels (ingest/derive.py).  The first works on mails: it groups them into
threads and postings and settles what replies say about each patch.  The second works on
postings only: it chains them into series, carries trailers between versions, marks what
pull requests carried and decides each version's status.  A posting's summary is everything
the second level reads of it, as plain JSON values (lists, strings, numbers), so it can be
stored and read back exactly, and the second level can be re-run over stored summaries
without loading or re-reading any mail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.applies import Undone
from ingest.ledger import DraftEvents, SlotFacts
from ingest.postings import Draft
from ingest.records import Evidence, GivenTrailer, Message, Person, PullRequest, Subject

Summary = dict[str, Any]
Json = Any


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def encode_subject(s: Subject) -> list[Json]:
    return [
        s.full,
        s.title,
        s.key,
        list(s.prefixes),
        s.is_reply,
        s.version,
        s.version_explicit,
        s.counter,
        s.total,
        s.rfc,
        s.resend,
        s.patch,
        s.pull,
        list(s.tags),
    ]


def decode_subject(v: list[Json]) -> Subject:
    # Positional: this runs for every patch of every posting a derivation reads back.
    return Subject(
        v[0],
        v[1],
        v[2],
        tuple(v[3]),
        v[4],
        v[5],
        v[6],
        v[7],
        v[8],
        v[9],
        v[10],
        v[11],
        v[12],
        tuple(v[13]),
    )


def encode_member(m: Message) -> list[Json]:
    """The parts of a cover or patch the second level reads."""
    return [
        m.msgid,
        encode_subject(m.subject),
        [m.sender.name, m.sender.email],
        _when(m.date),
        _when(m.received),
        m.patch_id,
        m.send_id,
        m.change_id,
        list(m.version_links),
    ]


def decode_member(v: list[Json], pull: PullRequest | None = None) -> Message:
    date, received = v[3], v[4]
    return Message(
        v[0],
        decode_subject(v[1]),
        Person(v[2][0], v[2][1]),
        datetime.fromisoformat(date) if date is not None else None,
        datetime.fromisoformat(received) if received is not None else None,
        patch_id=v[5],
        send_id=v[6],
        change_id=v[7],
        version_links=tuple(v[8]),
        pull=pull,
    )


def encode_evidence(e: Evidence | None) -> list[Json] | None:
    if e is None:
        return None
    return [e.msgid, e.by, e.where, e.commit, _when(e.when), e.kind]


def decode_evidence(v: list[Json] | None) -> Evidence | None:
    if v is None:
        return None
    return Evidence(msgid=v[0], by=v[1], where=v[2], commit=v[3], when=_date(v[4]), kind=v[5])


def _evidence_list(v: list[Json]) -> list[Evidence]:
    return [e for x in v if (e := decode_evidence(x)) is not None]


def encode_trailer(t: GivenTrailer) -> list[Json]:
    return [
        t.kind,
        t.name,
        t.email,
        t.msgid,
        t.source,
        t.from_version,
        t.mismatch,
        t.scope,
        t.unresolved,
    ]


def decode_trailer(v: list[Json]) -> GivenTrailer:
    return GivenTrailer(
        kind=v[0],
        name=v[1],
        email=v[2],
        msgid=v[3],
        source=v[4],
        from_version=v[5],
        mismatch=v[6],
        scope=v[7],
        unresolved=v[8],
    )


def summarise(
    d: Draft,
    slots: dict[int, SlotFacts],
    events: DraftEvents | None,
    undone: Undone | None,
    *,
    replied: dict[str, str],
    ancestors: dict[str, tuple[str, ...]],
    thread_root: str | None,
    last: datetime | None,
) -> Summary:
    """One posting after the first level: its members, its patches' trailers and applied
    marks, what replies said of it, and what chaining needs from its thread (the posting
    each member answers, ``replied``; a partial reroll's ancestors)."""
    assert d.order is not None
    pull = d.cover.pull if d.cover is not None else None
    return {
        "key": d.first.msgid,
        "order": [d.order[0].isoformat(), d.order[1]],
        "cover": encode_member(d.cover) if d.cover is not None else None,
        "members": [[n, encode_member(m)] for n, m in sorted(d.members.items())],
        "slots": [
            [
                n,
                [encode_trailer(t) for t in s.trailers],
                encode_evidence(s.applied),
                encode_evidence(s.pulled),
            ]
            for n, s in sorted(slots.items())
        ],
        "notices": [encode_evidence(e) for e in events.notices] if events else [],
        "respins": [encode_evidence(e) for e in events.respins] if events else [],
        "undone": (
            [[encode_evidence(e) for e in undone.by], [encode_evidence(e) for e in undone.undone]]
            if undone is not None
            else None
        ),
        "replied": dict(sorted(replied.items())),
        "ancestors": {k: list(v) for k, v in sorted(ancestors.items())},
        "thread_root": thread_root,
        "last": _when(last),
        "pull": (
            [pull.url, [[a, s] for a, s in pull.shortlog]]
            if pull is not None and pull.shortlog
            else None
        ),
    }


# What chaining reads of a posting (the head), and what finishing its series reads too.
HEAD = ("key", "order", "cover", "members", "replied", "pull")
BODY = ("slots", "notices", "respins", "undone", "ancestors", "thread_root", "last")


def split(summary: Summary) -> tuple[Summary, Summary]:
    return {k: summary[k] for k in HEAD}, {k: summary[k] for k in BODY}


@dataclass
class Unpacked:
    """Summaries turned back into the mutable objects the second level works on: postings
    from their heads (enough to chain them), the rest from their bodies when a series
    is finished (``unpack_body``)."""

    drafts: list[Draft] = field(default_factory=list)  # in the order they were made
    by_key: dict[str, Draft] = field(default_factory=dict)
    member_of: dict[str, Draft] = field(default_factory=dict)
    replied: dict[str, Draft] = field(default_factory=dict)
    slots_of: dict[int, dict[int, SlotFacts]] = field(default_factory=dict)
    events: dict[int, DraftEvents] = field(default_factory=dict)
    undone: dict[int, Undone] = field(default_factory=dict)
    ancestors: dict[int, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    thread_root: dict[int, str | None] = field(default_factory=dict)
    last: dict[int, datetime | None] = field(default_factory=dict)


def unpack(heads: list[Summary]) -> Unpacked:
    """Fresh Draft objects for the postings of ``heads`` (summaries or their heads); each
    call makes new ones, as the second level changes them."""
    out = Unpacked()
    replied_keys: dict[str, str] = {}
    for s in sorted(heads, key=_order):
        pull = None
        if s["pull"] is not None:
            url, shortlog = s["pull"]
            pull = PullRequest(url, tuple((a, t) for a, t in shortlog))
        cover = decode_member(s["cover"], pull) if s["cover"] is not None else None
        members = {n: decode_member(v) for n, v in s["members"]}
        d = Draft(members=members, cover=cover, order=_order(s))
        d.freeze()
        out.drafts.append(d)
        out.by_key[s["key"]] = d
        for m in d.all_messages():
            out.member_of[m.msgid] = d
        replied_keys.update(s["replied"])
    for msgid, key in replied_keys.items():
        if (target := out.by_key.get(key)) is not None:
            out.replied[msgid] = target
    return out


def unpack_body(out: Unpacked, d: Draft, body: Summary) -> None:
    """The rest of posting ``d``: its patches' trailers and marks, what replies said."""
    members = d.members
    out.slots_of[id(d)] = {
        n: SlotFacts(
            n=n,
            message=members[n],
            trailers=[decode_trailer(t) for t in trailers],
            applied=decode_evidence(applied),
            pulled=decode_evidence(pulled),
        )
        for n, trailers, applied, pulled in body["slots"]
    }
    if body["notices"] or body["respins"]:
        out.events[id(d)] = DraftEvents(
            notices=_evidence_list(body["notices"]), respins=_evidence_list(body["respins"])
        )
    if body["undone"] is not None:
        by, undone = body["undone"]
        out.undone[id(d)] = Undone(by=_evidence_list(by), undone=_evidence_list(undone))
    out.ancestors[id(d)] = {k: tuple(v) for k, v in body["ancestors"].items()}
    out.thread_root[id(d)] = body["thread_root"]
    out.last[id(d)] = _date(body["last"])


def _order(s: Summary) -> tuple[datetime, str]:
    when, msgid = s["order"]
    return (datetime.fromisoformat(when), msgid)
