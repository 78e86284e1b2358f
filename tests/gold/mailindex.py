"""A plain index of the shared kvmarm archive for building gold sets, written without any of
kvmarm-bot's own parsing or fact rules (only the standard library), so that the people who
label samples and the samples themselves owe nothing to the rules they are used to score.

``load_index()`` reads every monthly mbox once and caches a compact index (headers, the
sender's own lines, the files a patch touches) under $KVMARM_GOLD_CACHE (default: the system
temp dir).  ``Mail`` is one message of it.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import gzip
import hashlib
import json
import mailbox
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path

INDEX_VERSION = 3
_DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_data() -> Path:
    return Path(os.environ.get("KVMARM_SHARED_DATA", _DEFAULT_SHARED))


@dataclass
class Mail:
    msgid: str
    month: str  # the archive file it came from, YYYY-MM
    subject: str
    sender: str  # "Name <address>"
    email: str
    date: str | None  # ISO UTC
    in_reply_to: str | None
    refs: list[str]
    text: str  # the whole decoded text/plain part
    paths: list[str] = field(default_factory=list)  # files the diff touches

    @property
    def parent(self) -> str | None:
        return self.in_reply_to or (self.refs[-1] if self.refs else None)


_MSGID_RE = re.compile(r"<([^<>\s]+)>")


def _ids(value: str | None) -> list[str]:
    return _MSGID_RE.findall(value or "")


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        d = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if d is None or d.tzinfo is None:
        return None
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(msg: email.message.EmailMessage) -> str:
    try:
        part = msg.get_body(preferencelist=("plain",))
    except Exception:
        part = None
    if part is None:
        part = msg
    if part.is_multipart():
        return ""
    try:
        return str(part.get_content())
    except Exception:
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


_DIFF_GIT_RE = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)


def _mail(raw: bytes, month: str) -> Mail | None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    ids = _ids(str(msg.get("Message-ID", "")))
    if not ids:
        return None
    sender = str(msg.get("From", ""))
    addr = email.utils.parseaddr(sender)[1].lower()
    text = _text(msg)
    paths = list(dict.fromkeys(b for _a, b in _DIFF_GIT_RE.findall(text)))
    irt = _ids(str(msg.get("In-Reply-To", "")))
    return Mail(
        msgid=ids[0],
        month=month,
        subject=" ".join(str(msg.get("Subject", "")).split()),
        sender=" ".join(sender.split()),
        email=addr,
        date=_date(str(msg.get("Date", "")) or None),
        in_reply_to=irt[0] if irt else None,
        refs=_ids(str(msg.get("References", ""))),
        text=text,
        paths=paths,
    )


def _archive_files() -> list[Path]:
    return sorted((shared_data() / "kvmarm-archive").glob("kvmarm-*.mbox.gz"))


def _iter_archive() -> Iterator[Mail]:
    for path in _archive_files():
        month = path.name.removeprefix("kvmarm-").removesuffix(".mbox.gz")
        with gzip.open(path, "rb") as fh, tempfile.NamedTemporaryFile() as tmp:
            tmp.write(fh.read())
            tmp.flush()
            box = mailbox.mbox(tmp.name)
            for key in box.iterkeys():
                m = _mail(box.get_bytes(key), month)
                if m is not None:
                    yield m


def load_index() -> dict[str, Mail]:
    """msgid → Mail for the whole archive (first copy of a duplicated Message-ID wins)."""
    files = _archive_files()
    if not files:
        raise SystemExit(f"no archive under {shared_data()} (set KVMARM_SHARED_DATA)")
    stamp = hashlib.sha256(
        json.dumps([INDEX_VERSION] + [(f.name, f.stat().st_size) for f in files]).encode()
    ).hexdigest()[:16]
    cache_dir = Path(os.environ.get("KVMARM_GOLD_CACHE", tempfile.gettempdir()))
    cache = cache_dir / f"kvmarm-gold-index-{stamp}.json.gz"
    if cache.exists():
        with gzip.open(cache, "rt", encoding="utf-8") as fh:
            return {m["msgid"]: Mail(**m) for m in json.load(fh)}
    out: dict[str, Mail] = {}
    for m in _iter_archive():
        out.setdefault(m.msgid, m)
    tmp = cache.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump([asdict(m) for m in out.values()], fh)
    tmp.replace(cache)
    return out


def children_of(index: dict[str, Mail]) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {}
    for m in index.values():
        if m.parent:
            kids.setdefault(m.parent, []).append(m.msgid)
    for v in kids.values():
        v.sort(key=lambda k: (index[k].date or "", k))
    return kids


def thread_root(index: dict[str, Mail], msgid: str) -> str:
    """The oldest ancestor we have (References first, as threads are written)."""
    m = index[msgid]
    for ref in m.refs:
        if ref in index:
            return thread_root(index, ref) if ref != msgid else ref
    seen = {msgid}
    while m.parent and m.parent in index and m.parent not in seen:
        seen.add(m.parent)
        m = index[m.parent]
    return m.msgid


def thread_of(index: dict[str, Mail], kids: dict[str, list[str]], msgid: str) -> list[str]:
    root = thread_root(index, msgid)
    out: list[str] = []
    stack = [root]
    while stack:
        k = stack.pop()
        if k in out:
            continue
        out.append(k)
        stack.extend(reversed(kids.get(k, [])))
    return out
