"""Derived facts (threads, series, versions, patches, trailers) in SQLite.

They are a pure function of the stored messages, so they are rewritten as a whole in one
transaction after messages change; readers never see a half-written state.
"""

from __future__ import annotations

import json

import sqlite_utils

from ingest.records import Derived, Evidence, Posting, Series
from storage.messages import iso
from storage.search_index import refresh_search_index

_TABLES = ("trailers", "patches", "versions", "series", "threads", "memberships")


def save_derived(db: sqlite_utils.Database, derived: Derived) -> None:
    threads = [
        {
            "root": t.root,
            "subject": t.subject,
            "first_date": iso(t.first_date),
            "last_date": iso(t.last_date),
            "n_messages": len(t.msgids),
            "missing": json.dumps(t.missing),
        }
        for t in derived.threads
    ]
    series, versions, patches, trailers = [], [], [], []
    for s in derived.series:
        series.append(_series_row(s))
        for pos, v in enumerate(s.versions):
            versions.append(_version_row(s, v, pos))
            for p in v.patches:
                patches.append(
                    {
                        "version_key": v.key,
                        "n": p.n,
                        "msgid": p.msgid,
                        "subject": p.subject,
                        "patch_id": p.patch_id,
                        "from_version": p.from_version,
                        "applied": evidence_json(p.applied),
                        "pulled": evidence_json(p.pulled),
                    }
                )
                for i, t in enumerate(p.trailers):
                    trailers.append(
                        {
                            "version_key": v.key,
                            "n": p.n,
                            "kind": t.kind,
                            "name": t.name,
                            "email": t.email,
                            "msgid": t.msgid,
                            "source": t.source,
                            "from_version": t.from_version,
                            "mismatch": int(t.mismatch),
                            "position": i,
                            "scope": t.scope,
                            "unresolved": int(t.unresolved),
                        }
                    )
    memberships = [
        {
            "msgid": msgid,
            "thread_root": root,
            "series_id": derived.series_of.get(msgid),
            "version_key": derived.posting_of.get(msgid),
        }
        for msgid, root in derived.thread_of.items()
    ]
    with db.atomic():
        for table in _TABLES:
            db.execute(f"DELETE FROM {table}")
        db.table("threads").insert_all(threads, batch_size=2000)
        db.table("series").insert_all(series, batch_size=2000)
        db.table("versions").insert_all(versions, batch_size=2000)
        db.table("patches").insert_all(patches, batch_size=2000)
        db.table("trailers").insert_all(trailers, batch_size=2000)
        db.table("memberships").insert_all(memberships, batch_size=2000)
        refresh_search_index(db)


def evidence_json(e: Evidence | None) -> str | None:
    return json.dumps(evidence_dict(e)) if e is not None else None


def evidence_dict(e: Evidence) -> dict:
    return {
        "kind": e.kind,
        "msgid": e.msgid,
        "by": e.by,
        "where": e.where,
        "commit": e.commit,
        "date": iso(e.when),
    }


def _series_row(s: Series) -> dict:
    latest = s.versions[-1]
    return {
        "id": s.id,
        "title": s.title,
        "title_key": latest.title.casefold(),
        "author_name": s.author.name,
        "author_email": s.author.email,
        "change_id": s.change_id,
        "links": json.dumps(s.links),
        "first_date": iso(s.versions[0].date),
        "last_date": iso(s.last_activity),
        "n_versions": len(s.versions),
        "latest_version": latest.version,
        "status": latest.status,
    }


def _version_row(s: Series, v: Posting, pos: int) -> dict:
    return {
        "key": v.key,
        "series_id": s.id,
        "position": pos,
        "version": v.version,
        "date": iso(v.date),
        "sender_name": v.sender.name,
        "sender_email": v.sender.email,
        "title": v.title,
        "cover": v.cover,
        "total": v.total,
        "prefixes": json.dumps(v.prefixes),
        "tags": json.dumps(v.tags),
        "category": v.category,
        "change_id": v.change_id,
        "resend": int(v.resend),
        "partial_reroll_of": v.partial_reroll_of,
        "status": v.status,
        "evidence": json.dumps([evidence_dict(e) for e in v.evidence]),
        "thread_root": v.thread_root,
    }
