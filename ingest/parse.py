"""parse_mail(bytes) → ParsedMail: the facts of one mail, tolerant of what real lists carry.

Parsing uses the standard library's compat32 policy (several times faster than the modern
policy, which matters for a 16k-mail archive) and decodes headers ourselves.  Whatever cannot
be parsed is recorded in ``Message.problems``; only a mail without a usable Message-ID is
refused (``MalformedMail``), because nothing could ever refer to it.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.header
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message as EmailMessage

from ingest import bodies, notices
from ingest.b4rules import DIFF_RE, DIFFSTAT_RE, followup_trailers, patch_trailers
from ingest.records import (
    Content,
    MalformedMail,
    Message,
    ParsedMail,
    Person,
    Subject,
    Trailer,
)
from ingest.scope import find_scopes
from ingest.subjects import parse_subject

_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_MSGID_RE = re.compile(r"<([^<>\s]+)>")
_SURROGATES_RE = re.compile("[\udc80-\udcff]")
_SIMPLE_FROM_RE = re.compile(
    r'^\s*(?:"(?P<qname>[^"\\]*)"|(?P<name>[^"<>@,;:()]*?))\s*<(?P<addr>[^<>@\s]+@[^<>\s]+)>\s*$'
    r"|^\s*(?P<bare>[^<>@\s]+@[^<>\s()]+)\s*$"
)
_PEEK_RES = {
    "message-id": re.compile(rb"(?im)^message-id:[ \t]*(?:\r?\n[ \t]+)*<([^<>\s]+)>"),
    "list-id": re.compile(rb"(?im)^list-id:[^\n<]*(?:\r?\n[ \t][^\n<]*)*<([^<>]+)>"),
}
_BARE_MSGID_RE = re.compile(r"^\s*([^<>\s]+@[^<>\s]+)\s*$")
_CHANGE_ID_RE = re.compile(r"(?m)^change-id:[ \t]*(\S+)")
_LINK_RE = re.compile(
    r"https?://(?:lore\.kernel\.org/(?:[\w.+-]+/)?|lkml\.kernel\.org/r/|patch\.msgid\.link/"
    r"|lore\.kernel\.org/r/|patchwork\.[\w.]+/project/[\w.+-]+/(?:cover|patch)/)<?(?P<id>[^\s/<>\"']+(?:@|%40)[^\s/<>\"']+)"
)
# Words that make a lore link a link to an earlier version ("v1: https://…", "Link to v2").
# Not "previous"/"series": "applies on top of the previous fix at https://…" names a
# dependency, not an earlier version (Andrew Scull's nVHE panic series, 2021-02).
_VERSION_WORDS_RE = re.compile(
    r"\b(?:v\d+|versions?|revisions?|postings?|iterations?|rfc|resend|respin)\b", re.I
)
_FOOTNOTE_RE = re.compile(r"\s*(?:\[\d+\]|[-*]|\d+[.)])?\s*")
_SEND_ID_RES = (
    # git send-email since 2.x: 20190909121337.27287-4-christoffer.dall@arm.com
    ("gse", re.compile(r"^(\d{14}\.\d+)-\d+-(.+)$")),
    # old git send-email: 1473632524-8585-2-git-send-email-stephenfinucane@gmail.com
    ("gse", re.compile(r"^(\d+-\d+)-\d+-git-send-email-(.+)$")),
    # git format-patch --thread: cover.1589784221.git.ananos@… / <sha1>.1589784221.git.ananos@…
    ("fp", re.compile(r"^(?:cover|[0-9a-f]{40})\.(\d+)\.git\.(.+)$")),
    # b4 send: 20221025-test1-v1-4-e4f28f57990c@linuxfoundation.org
    ("b4", re.compile(r"^(\d{8}-.+-v\d+)-\d+-([0-9a-f]{8,})@(.+)$")),
)
_BOT_LOCALPARTS = ("lkp", "syzbot", "pr-tracker-bot", "patchwork-bot", "sashiko", "kbuild")
_BOT_NAME_RE = re.compile(r"\b(?:test robot|(?:ro)?bot)\b|-bot\b|^syzbot$", re.I)
_MAX_DATE_SKEW = timedelta(days=365 * 30)


@dataclass(frozen=True, slots=True)
class MailHeaders:
    """The header facts of a mail, read exactly as parse_mail reads them."""

    msgid: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str  # decoded
    sender: Person
    date: datetime | None
    date_problem: str | None
    received: datetime | None  # public-inbox's rt: first Received with a date, else Date


def read_headers(raw: bytes) -> MailHeaders:
    """Header facts only (no body): what the lore sync needs to plan its requests."""
    head, _body = _split_head(raw)
    return _mail_headers(_Headers(_HEADER_PARSER.parsebytes(_wanted_headers(head))))


def _mail_headers(headers: _Headers) -> MailHeaders:
    msgid = _msgid(headers.get("message-id"))
    in_reply_to = _msgid(headers.get("in-reply-to"))
    date, problem = parse_date(headers.get("date"))
    return MailHeaders(
        msgid=msgid,
        in_reply_to=in_reply_to,
        references=_references(headers.all("references"), in_reply_to, msgid or ""),
        subject=_decoded(headers.get("subject")),
        sender=_sender(headers.get("from") or ""),
        date=date,
        date_problem=problem,
        received=_received(headers.all("received")) or date,
    )


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse one RFC 822 mail.  Raises MalformedMail when it has no usable Message-ID."""
    head, raw_body = _split_head(raw)
    msg = _HEADER_PARSER.parsebytes(_wanted_headers(head))
    headers = _Headers(msg)
    facts = _mail_headers(headers)
    msgid = facts.msgid
    if not msgid:
        raise MalformedMail("no Message-ID header")
    problems: list[str] = []
    subject = parse_subject(facts.subject)
    sender, date = facts.sender, facts.date
    if facts.date_problem:
        problems.append(f"Date: {facts.date_problem}")
    text = _body_text(raw, msg, raw_body, problems)
    parts = bodies.split_body(text)
    is_patch = parts.has_diff and not subject.is_reply
    trailers = _trailers(subject, parts, sender, is_patch)
    in_reply_to, references = facts.in_reply_to, facts.references
    is_reply = subject.is_reply or _is_unmarked_reply(subject, parts, trailers, references)
    own = parts.message if is_patch else bodies.own_text(parts.message)
    message = Message(
        msgid=msgid,
        subject=subject if is_reply == subject.is_reply else _as_reply(subject),
        sender=sender,
        date=date,
        received=_received(headers.all("received")),
        list_id=_list_id(headers.get("list-id")),
        in_reply_to=in_reply_to,
        references=references,
        has_diff=parts.has_diff,
        has_diffstat=bool(DIFFSTAT_RE.search(text, 0, len(text) - len(parts.diff))),
        is_bot=is_bot(sender),
        trailers=tuple(trailers),
        change_id=_change_id(parts.message, parts.notes, parts.diff),
        version_links=_version_links(own + "\n" + parts.notes, msgid),
        applied=notices.find_stable_notice(facts.subject)
        or (notices.find_applied_notice(own) if is_reply else None),
        respin=notices.find_respin(own) if is_reply else None,
        pull=notices.parse_pull_request(text) if subject.pull and not is_reply else None,
        send_id=send_id(msgid),
        problems=tuple(problems),
        author=in_body_author(parts.message) if is_patch else None,
    )
    body = own if not parts.notes else f"{own}\n\n---\n{parts.notes}"
    return ParsedMail(message, Content(body=body.strip(), diff=parts.diff, raw=raw))


def peek_header(raw: bytes, name: str) -> str | None:
    """A Message-ID-like header (``<…>`` value) read from raw bytes without parsing the mail.

    Gives the same answer parse_mail would for Message-ID and List-Id, at a fraction of
    the cost; used to skip mails that are already stored.
    """
    end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 1]
    at = head.lower().find(b"\n" + name.encode() + b":")
    if at < 0 and not head.lower().startswith(name.encode() + b":"):
        return None
    m = _PEEK_RES[name].search(head, max(at, 0))
    if m is None:
        return None
    value = m.group(1).decode("ascii", "replace")
    return value.strip().lower() if name == "list-id" else value


def parse_date(value: str | None) -> tuple[datetime | None, str | None]:
    """RFC 5322 date → aware UTC datetime, or (None, why)."""
    if value is None or not value.strip():
        return None, "missing"
    try:
        parsed = email.utils.parsedate_tz(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        parsed = None
    if parsed is None:
        return None, f"unparseable {value.strip()[:60]!r}"
    offset = parsed[9] or 0
    try:
        naive = datetime(*parsed[:6])  # noqa: DTZ001 - the offset is applied below
    except (ValueError, OverflowError):
        return None, f"out of range {value.strip()[:60]!r}"
    if abs(offset) > 14 * 3600:
        return naive.replace(tzinfo=UTC), f"timezone out of range {value.strip()[:60]!r}"
    try:
        when = naive.replace(tzinfo=UTC) - timedelta(seconds=offset)
    except OverflowError:  # year 1 or 9999 shifted past datetime's range by the offset
        return None, f"out of range {value.strip()[:60]!r}"
    if abs(when - datetime(2000, 1, 1, tzinfo=UTC)) > _MAX_DATE_SKEW:
        return None, f"implausible year {value.strip()[:60]!r}"
    return when, None


def is_bot(person: Person) -> bool:
    """Robots report (build failures, syzbot, pr-tracker); they are events, not participants."""
    local, _, domain = person.email.partition("@")
    if domain == "syzkaller.appspotmail.com" or local.startswith(_BOT_LOCALPARTS):
        return True
    return bool(_BOT_NAME_RE.search(person.name))


def send_id(msgid: str) -> str | None:
    """Identify the git-send-email / format-patch / b4 run that produced a Message-ID."""
    for kind, pattern in _SEND_ID_RES:
        if m := pattern.match(msgid):
            return f"{kind}:" + ":".join(m.groups()).lower()
    return None


# ---- headers ----------------------------------------------------------------------------


class _Headers:
    """Header lookup by lower-case name; the first occurrence wins, like Message.get()."""

    def __init__(self, msg: EmailMessage) -> None:
        self._all: dict[str, list[str]] = {}
        for name, value in msg.raw_items():
            self._all.setdefault(name.lower(), []).append(_text(value))

    def get(self, name: str) -> str | None:
        values = self._all.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return self._all.get(name, [])


def _text(value) -> str:
    value = str(value)
    if not value.isascii() and _SURROGATES_RE.search(value):
        # compat32 keeps raw 8-bit header bytes as surrogate escapes: assume UTF-8.
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return value


def _decoded(value: str | None) -> str:
    """RFC 2047 encoded words → text; unknown charsets degrade to replacement characters."""
    if not value:
        return ""
    if "=?" not in value:
        return " ".join(value.split())
    try:
        chunks = email.header.decode_header(value)
    except (ValueError, email.errors.HeaderParseError):
        return " ".join(value.split())
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        out.append(_decode_bytes(chunk, charset or "ascii"))
    return " ".join("".join(out).split())


def _decode_bytes(data: bytes, charset: str) -> str:
    """An RFC 2047 word's bytes → text (an unknown charset: UTF-8, else Latin-1)."""
    codec = text_codec(charset)
    if codec is not None:
        try:
            return data.decode(codec, "replace")
        except (UnicodeError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _msgid(value: str | None) -> str | None:
    if not value:
        return None
    if m := _MSGID_RE.search(value):
        return m.group(1)
    if m := _BARE_MSGID_RE.match(value):
        return m.group(1)
    return None


def _references(headers: list[str], irt: str | None, own: str) -> tuple[str, ...]:
    refs: list[str] = []
    for header in headers:
        refs.extend(_MSGID_RE.findall(header))
    if irt and irt not in refs:
        refs.append(irt)
    return tuple(r for r in dict.fromkeys(refs) if r != own)


def _sender(raw: str) -> Person:
    if m := _SIMPLE_FROM_RE.match(raw):  # "Name <addr>" / "addr": skip parseaddr's cost
        name = m.group("qname") or m.group("name") or ""
        addr = m.group("addr") or m.group("bare")
    else:
        name, addr = email.utils.parseaddr(raw)
    if not addr and "@" in raw:
        addr = raw.strip().strip("<>")
    name = _decoded(name).strip().strip('"').strip()
    addr = addr.strip().lower()
    return Person(name=name or addr, email=addr)


def _received(received: list[str]) -> datetime | None:
    """The topmost Received header with a parseable date (public-inbox's ``rt``)."""
    for header in received:
        date, _ = parse_date(header.rpartition(";")[2])
        if date is not None:
            return date
    return None


def _list_id(value: str | None) -> str | None:
    if not value:
        return None
    if m := re.search(r"<([^<>]+)>", value):
        return m.group(1).strip().lower()
    return value.strip().lower() or None


# ---- body -------------------------------------------------------------------------------

_TEXT_TYPES = ("text/plain", "text/x-patch", "text/x-diff", "application/x-patch")


# Matched on the lower-cased header block (case-insensitive regexes are slow in ``re``).
# Both start with a literal newline so ``re`` can skip ahead quickly; the header block is
# searched with a newline prepended.
_WANTED_FIELD_RE = re.compile(
    rb"\n((?:message-id|subject|from|date|in-reply-to|references|list-id|received"
    rb"|content-type|content-transfer-encoding|mime-version):[^\n]*(?:\n[ \t][^\n]*)*)"
)
# email.feedparser's headerRE: a line that is not "Name:", "From " or a continuation ends the
# header block for the parser (the rest is body to it); we stop at the same place.
_NOT_A_HEADER_LINE_RE = re.compile(rb"\n(?!From |[\x21-\x39\x3b-\x7e]*:|[\t ])[^\n]")


def _wanted_headers(head: bytes) -> bytes:
    """Only the header fields we read, with their continuation lines.

    A kvmarm mail carries ~45 header fields (Received chains, X-Spam-*, List-*); parsing the
    dozen we use saves a third of the parse.  Like the parser, stop at the first line that
    is neither a field nor a continuation (the rest of such a mail is body to the parser).
    """
    head = b"\n" + head
    if bad := _NOT_A_HEADER_LINE_RE.search(head):
        head = head[: bad.start() + 1]
    fields = _WANTED_FIELD_RE.finditer(head.lower())
    return b"".join(head[m.start(1) : m.end(1)] + b"\n" for m in fields)


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body bytes, split at the first empty line."""
    lf = raw.find(b"\n\n")
    crlf = raw.find(b"\r\n\r\n", 0, lf if lf >= 0 else len(raw))
    if crlf >= 0:
        return raw[: crlf + 2], raw[crlf + 4 :]
    if lf >= 0:
        return raw[: lf + 1], raw[lf + 2 :]
    return raw, b""


def _body_text(raw: bytes, msg: EmailMessage, body: bytes, problems: list[str]) -> str:
    """The mail's text.  Single-part mails (nearly all list mail) are decoded directly; only
    MIME multiparts pay for the standard library's full parse."""
    ctype = msg.get_content_type()
    if msg.get_content_maintype() in ("multipart", "message"):
        return _multipart_text(
            email.message_from_bytes(raw, policy=email.policy.compat32), problems
        )
    if ctype not in _TEXT_TYPES and ctype != "text/html":
        return ""
    cte = str(msg.get("content-transfer-encoding") or "").strip().lower()
    text = _decode_text(_decode_cte(body, cte, problems), _charset(msg), problems)
    if ctype == "text/html":
        text = bodies.html_to_text(text)
    return bodies.strip_list_footer(text.replace("\r\n", "\n").replace("\r", "\n"))


def _decode_cte(body: bytes, cte: str, problems: list[str]) -> bytes:
    if cte == "base64":
        try:
            return binascii.a2b_base64(b"".join(body.split()) + b"==")
        except binascii.Error as exc:
            problems.append(f"body: bad base64 ({exc}), kept undecoded")
            return body
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


def _multipart_text(msg: EmailMessage, problems: list[str]) -> str:
    """The mail's text: first plain part, plus later parts that carry a diff (attachments)."""
    texts: list[str] = []
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in _TEXT_TYPES and ctype != "text/html":
            continue
        text = _part_text(part, problems)
        if text is None or bodies.is_list_footer(text):
            continue
        if ctype == "text/html":
            html = html or text
        elif not texts or DIFF_RE.search(text):
            texts.append(text)
    if not texts and html is not None:
        texts.append(bodies.html_to_text(html))
    return bodies.strip_list_footer("\n".join(texts).replace("\r\n", "\n").replace("\r", "\n"))


def _part_text(part: EmailMessage, problems: list[str]) -> str | None:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError, LookupError) as exc:
        problems.append(f"body: undecodable part ({exc})")
        return None
    if not isinstance(payload, bytes):
        return None
    return _decode_text(payload, _charset(part), problems)


def _decode_text(payload: bytes, charset: str, problems: list[str]) -> str:
    """Bytes in the declared charset → text.  Bytes that are not valid in it are replaced
    (and said so); an unknown or bogus charset (``unknown-8bit``, a made-up name, a codec
    that is not a text encoding) is read as UTF-8, else Latin-1, and recorded."""
    codec = text_codec(charset)
    if codec is not None:
        try:
            return payload.decode(codec)
        except (UnicodeError, ValueError):
            pass
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        if codec is not None and codec != "ascii":
            problems.append(f"body: not valid {charset}, decoded with replacement characters")
            return payload.decode(codec, "replace")
        if codec is None:
            problems.append(f"body: unknown charset {charset[:40]!r}, decoded as Latin-1")
            return payload.decode("latin-1")
        problems.append(f"body: not valid {charset}, decoded with replacement characters")
        return payload.decode("utf-8", "replace")
    if codec is None:
        problems.append(f"body: unknown charset {charset[:40]!r}, decoded as UTF-8")
    return text


# Codecs Python has that are not how mail text is encoded: transforms and oddities.
_NOT_MAIL_CHARSETS = frozenset(
    {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape", "charmap", "mbcs"}
)


def text_codec(charset: str) -> str | None:
    """Python's codec for a MIME charset name, or None when there is no text codec by that
    name (the lookup is explicit: ``b"".decode(name)`` never fails, whatever the name)."""
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError, TypeError):
        return None
    if (
        not getattr(info, "_is_text_encoding", True)
        or info.name.replace("-", "_") in _NOT_MAIL_CHARSETS
    ):
        return None
    return info.name


def _charset(part: EmailMessage) -> str:
    try:
        charset = part.get_content_charset() or "utf-8"
    except (ValueError, LookupError, UnicodeError):
        return "utf-8"
    charset = charset.strip().lower()
    return "ascii" if charset in ("us-ascii", "") else charset


# ---- facts from the body ----------------------------------------------------------------


def _trailers(subject: Subject, parts: bodies.BodyParts, sender: Person, is_patch: bool):
    if is_patch:
        return patch_trailers(parts.message)
    if parts.has_diff:
        # A reply carrying its own patch: the trailer block of that inline patch (its last
        # paragraph) is the inline patch's, not a follow-up to the patch answered; what
        # the sender wrote above it ("you may add Tested-by: …") is.
        prose = parts.message.strip("\n").rsplit("\n\n", 1)[0] if "\n\n" in parts.message else ""
        return _scoped(prose, followup_trailers(prose, sender.name, sender.email))
    if subject.counter == 0 and not subject.is_reply:
        return []  # a cover letter's own text is not a review
    return _scoped(parts.message, followup_trailers(parts.message, sender.name, sender.email))


def _scoped(text: str, trailers: list[Trailer]) -> list[Trailer]:
    """Follow-up trailers with what the words around them say they cover."""
    if not trailers:
        return trailers
    scopes = find_scopes(text, [(t.kind, t.email) for t in trailers])
    return [
        replace(t, scope=s) if s is not None else t for t, s in zip(trailers, scopes, strict=True)
    ]


_IN_BODY_FROM_RE = re.compile(r"\A\s*From:[ \t]*(\S[^\n]*)\n")


def in_body_author(message: str) -> Person | None:
    """The author a patch names in its first line (``From: Name <address>``), as b4 reads it."""
    m = _IN_BODY_FROM_RE.match(message)
    if m is None:
        return None
    name, address = email.utils.parseaddr(_decoded(m.group(1)))
    if "@" not in address:
        return None
    return Person(name.strip() or address.lower(), address.strip().lower())


def _is_unmarked_reply(subject: Subject, parts: bodies.BodyParts, trailers, references) -> bool:
    """b4's rule: no "Re:", no diff, but trailers and references → a follow-up after all."""
    if subject.counter is not None or parts.has_diff or not trailers:
        return False
    return bool(references)


def _as_reply(subject: Subject) -> Subject:
    return replace(subject, is_reply=True)


def _change_id(*texts: str) -> str | None:
    """b4's "change-id:" line: in a cover letter's basement, or after a single patch's diff."""
    for text in texts:
        if "change-id:" in text and (m := _CHANGE_ID_RE.search(text)):
            return m.group(1)
    return None


def _version_links(text: str, own: str) -> tuple[str, ...]:
    """Message-IDs of lore links on lines that talk about a version ("v1: https://…")."""
    found = []
    for m in _LINK_RE.finditer(text):
        line = text.rfind("\n", 0, m.start())
        context = text[line + 1 : m.end()]  # this line up to and with the URL
        if _FOOTNOTE_RE.fullmatch(text[line + 1 : m.start()]):
            # "v1:\n  https://…" or "[1] https://…": the line before says what it is
            previous = text.rfind("\n", 0, line) if line > 0 else -1
            context = text[previous + 1 : m.end()]
        if not _VERSION_WORDS_RE.search(context):
            continue
        msgid = m.group("id").replace("%40", "@").replace("%2B", "+").replace("%2b", "+")
        msgid = msgid.rstrip(".,;:)>]")
        if msgid != own:
            found.append(msgid)
    return tuple(dict.fromkeys(found))
