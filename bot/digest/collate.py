"""A thread (or a series' mails) as one document: who said what, in order.

Built from ``messages.body`` — the sender's own words, already without quotes, attributions,
signatures, list footers and diffs — and cleaned a little more here: trailer blocks,
diffstats, shortlogs and git version footers go, review trailers given in replies stay (they
are what happened).  Long mails are cut on line boundaries so a week's document stays small.

Mail text is untrusted: anything that looks like our own document markers is defused, so a
mail cannot close its block and pretend to be the instructions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest.records import REVIEW_KINDS
from storage.digests import MailRow

_TRAILER_RE = re.compile(
    r"^[ \t]*(?:Signed-off-by|Cc|Link|Fixes|Reported-by|Suggested-by|Co-developed-by|"
    r"Message-Id|Change-Id|Closes|Debugged-by|Originally-by|Requested-by|Based-on-patch-by|"
    r"Reviewed-by|Acked-by|Tested-by|Reported-and-tested-by)[ \t]*:.*$",
    re.I | re.M,
)
_REVIEW_RE = re.compile(rf"^[ \t]*({'|'.join(REVIEW_KINDS)})[ \t]*:[ \t]*(.+)$", re.I | re.M)
_DIFFSTAT_RE = re.compile(
    r"^[ \t]*\S+[ \t]+\|[ \t]+(?:\d+ ?[+-]*|Bin\b.*)[ \t]*$"
    r"|^[ \t]*\d+ files? changed(?:, .*)?$"
    r"|^[ \t]*(?:create|delete|rename) mode \d+ .*$",
    re.M,
)
# "Alexandru Elisei (4):" followed by indented commit subjects (git shortlog in covers).
_SHORTLOG_RE = re.compile(r"^[^\n]+ \(\d+\):\n(?:[ \t]+[^\n]*\n?)+", re.M)
_FOOTER_RE = re.compile(r"^(?:--[ \t]*\n(?:2\.\d+[.\d]*|b4 [\d.]+).*|base-commit: .*)$", re.M)
_MARKER_RE = re.compile(r"<<<|>>>")
_BLANKS_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")

# Per-mail caps, tried in order until the document fits the budget.
_CAPS: tuple[dict[str, int], ...] = (
    {"cover": 3000, "patch": 400, "post": 2000, "reply": 1500, "bot": 200, "pull": 800},
    {"cover": 1500, "patch": 0, "post": 1200, "reply": 800, "bot": 120, "pull": 400},
    {"cover": 800, "patch": 0, "post": 600, "reply": 400, "bot": 0, "pull": 200},
)
DEFAULT_BUDGET = 12_000  # characters of mail text per document


@dataclass(frozen=True, slots=True)
class CollatedMail:
    label: int  # [n] in the document, 1-based, in date order
    msgid: str
    date: str  # ISO UTC
    name: str
    email: str
    subject: str
    kind: str  # cover | patch | post (starts a discussion) | reply | bot | pull
    text: str  # cleaned own words, possibly cut
    cut: bool = False


def mail_kind(mail: MailRow) -> str:
    if mail.is_bot:
        return "bot"
    if mail.pull and not mail.is_reply:
        return "pull"
    if not mail.is_reply and mail.counter == 0:
        return "cover"
    if not mail.is_reply and (mail.has_diff or (mail.counter or 0) > 0):
        return "patch"
    return "reply" if mail.is_reply else "post"


def clean_text(body: str, kind: str) -> str:
    """The parts of a body worth reading: no trailer blocks, diffstats, shortlogs, footers."""
    text = body.replace("\r\n", "\n")
    if kind in ("reply", "post"):
        text = _REVIEW_RE.sub(lambda m: f"[gives {_canonical(m.group(1))}]", text)
    text = _TRAILER_RE.sub("", text)
    text = _DIFFSTAT_RE.sub("", text)
    text = _SHORTLOG_RE.sub("", text)
    text = _FOOTER_RE.sub("", text)
    text = _MARKER_RE.sub("‹‹", text)
    return _BLANKS_RE.sub("\n\n", text).strip()


def collate(
    mails: Sequence[MailRow],
    texts: Mapping[str, str],
    *,
    budget: int = DEFAULT_BUDGET,
    start: int = 1,
) -> tuple[CollatedMail, ...]:
    """Mails in date order with their cleaned text, cut to fit ``budget`` characters.

    Labels run from ``start`` so two collations (earlier mails, this period's) can share one
    numbering in a prompt.
    """
    ordered = sorted(mails, key=lambda m: (m.date or "", m.msgid))
    kinds = [mail_kind(m) for m in ordered]
    cleaned = [clean_text(texts.get(m.msgid, ""), k) for m, k in zip(ordered, kinds, strict=True)]
    for caps in _CAPS:
        cut = [_cut(t, caps[k]) for t, k in zip(cleaned, kinds, strict=True)]
        if sum(len(t) for t, _ in cut) <= budget:
            break
    else:
        cut = _squeeze(cut, budget)
    return tuple(
        CollatedMail(
            label=i,
            msgid=m.msgid,
            date=m.date or "",
            name=m.name,
            email=m.email,
            subject=_MARKER_RE.sub("‹‹", m.subject),
            kind=k,
            text=t,
            cut=was_cut,
        )
        for i, (m, k, (t, was_cut)) in enumerate(zip(ordered, kinds, cut, strict=True), start=start)
    )


def render_document(mails: Sequence[CollatedMail]) -> str:
    """The collated mails as one text: a header line per mail, then its words."""
    blocks = []
    for m in mails:
        when = m.date.replace("T", " ").replace("Z", " UTC")
        head = f"<<<MAIL {m.label}>>> {when} | {m.name} <{m.email}> | {m.kind} | {m.subject}"
        body = m.text or "(no text of its own)"
        if m.cut:
            body += "\n[…]"
        blocks.append(f"{head}\n{body}\n<<<END MAIL {m.label}>>>")
    return "\n\n".join(blocks)


def _cut(text: str, cap: int) -> tuple[str, bool]:
    if len(text) <= cap:
        return text, False
    if cap <= 0:
        return "", bool(text)
    head = text[:cap]
    newline = head.rfind("\n")
    if newline > cap // 2:
        head = head[:newline]
    return head.rstrip(), True


def _squeeze(cut: list[tuple[str, bool]], budget: int) -> list[tuple[str, bool]]:
    """Last resort: an equal share per mail."""
    share = max(80, budget // max(1, len(cut)))
    return [(_cut(t, share)[0], was or len(t) > share) for t, was in cut]


def _canonical(kind: str) -> str:
    for k in REVIEW_KINDS:
        if k.lower() == kind.lower():
            return k
    return kind
