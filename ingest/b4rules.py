"""b4's rules, used per mail by the pure parser: inline trailers of a patch, follow-up
trailers of a reply, and what a diff / diffstat looks like.

b4 is the reference for what counts as a trailer on the kernel lists, so we call its own
``LoreMessage.get_body_parts`` / ``find_trailers`` and its sender check ``get_trailers``
instead of re-implementing them.  Only pure static helpers are used: no b4 config, no network.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import b4

from ingest.records import Trailer

# Lines b4 never treats as follow-up trailers (patch metadata, list boilerplate).
_NOT_FOLLOWUP = {
    "from",
    "author",
    "cc",
    "to",
    "date",
    "subject",
    "subscribe",
    "unsubscribe",
    "base-commit",
    "change-id",
    "message-id",
}
# Cheap pre-check: only lines b4 could accept as follow-up trailers (an address in the
# value, or a link/fixes trailer) make the line-by-line scan worth running.
_MAYBE_TRAILER_RE = re.compile(
    r"(?mi)^[ \t]*(?:\w\S*:[ \t]+[^\n]*\S@\S|(?:fixes|link|buglink|closes|obsoleted-by):)"
)
_CANONICAL = {
    "reviewed-by": "Reviewed-by",
    "acked-by": "Acked-by",
    "tested-by": "Tested-by",
    "signed-off-by": "Signed-off-by",
    "reported-by": "Reported-by",
    "suggested-by": "Suggested-by",
    "co-developed-by": "Co-developed-by",
}

DIFF_RE: re.Pattern[str] = b4.DIFF_RE
DIFFSTAT_RE: re.Pattern[str] = b4.DIFFSTAT_RE


def patch_trailers(message: str) -> list[Trailer]:
    """Trailers of a patch's commit message (text above "---"): its last paragraph, which is
    what b4's ``get_body_parts`` returns as trailers, without re-scanning the rest."""
    message = message.replace("\r", "").strip("\n").rsplit("\n-- \n", 1)[0]
    last = message.rsplit("\n\n", 1)[-1]
    ltrs = find_trailers(_candidate_lines(last), followup=False)
    return [t for t in map(_to_trailer, ltrs) if t is not None]


# b4's own joins of wrapped trailers (find_trailers does them too; we must do them before
# dropping lines, or a wrapped "Signed-off-by: Long Name\n<addr>" would lose its address).
_WRAPPED_FIXES_RE = re.compile(r"^(\S+:\s+[\da-f]+\s+\([^)]+)\n([^\n]+\))", re.M)
_WRAPPED_ADDR_RE = re.compile(r"^(\S+:\s+[^<]+)\n(<[^>]+>)$", re.M)
_KEEP_LINE_RE = re.compile(r"^\s*(?:\w\S+:\s+\S|\[[^]]+]\s*$)")


def _candidate_lines(text: str) -> str:
    """The lines b4's find_trailers could use, each run of other lines folded to one ".".

    find_trailers runs a regex per line through ``re``'s cache; on long bodies that is most
    of our parse time.  Only a line's being "not a trailer" matters for the others, so
    folding them keeps the result identical (tests/test_b4_equivalence.py checks it).
    """
    text = text.split("\n-- \n", 1)[0].strip() + "\n"
    text = _WRAPPED_ADDR_RE.sub(r"\1 \2", _WRAPPED_FIXES_RE.sub(r"\1 \2", text))
    out: list[str] = []
    for line in text.split("\n"):
        if _KEEP_LINE_RE.match(line):
            out.append(line)
        elif not out or out[-1] != ".":
            out.append(".")  # not blank: find_trailers strips blank lines at the edges
    return "\n".join(out)


def followup_trailers(text: str, sender_name: str, sender_email: str) -> list[Trailer]:
    """Trailers given in a reply, marked ``mismatch`` when b4 would refuse them.

    b4 accepts a follow-up trailer only when its address (or name) matches the sender;
    others ("Reviewed-by: Someone Else") are kept with ``mismatch=True`` so they can be
    shown as evidence but are never counted as given.
    """
    if not _MAYBE_TRAILER_RE.search(text):
        return []
    ltrs = find_trailers(_candidate_lines(text), followup=True)
    ltrs = [t for t in ltrs if t.lname not in _NOT_FOLLOWUP]
    if not ltrs:
        return []
    # b4's sender check is an instance method reading only these three attributes.
    sender: Any = SimpleNamespace(
        trailers=ltrs, fromemail=sender_email, fromname=sender_name or sender_email
    )
    _accepted, mismatched = b4.LoreMessage.get_trailers(sender, sloppy=False)
    refused = {id(t) for t in mismatched}
    converted = (_to_trailer(ltr, mismatch=id(ltr) in refused) for ltr in ltrs)
    return [t for t in converted if t is not None]


# ---- b4.LoreMessage.find_trailers, line for line ------------------------------------------
# b4 0.16's loop is kept exactly (tests/test_b4_equivalence.py compares both on every mail of
# the archive); only its regexes are compiled once, and the "# extinfo" split — a regex that
# backtracks quadratically on every trailer value — is done with rfind.  Trailer objects are
# still b4's own LoreTrailer, so address parsing and person/utility typing are b4's.
_IGNORES = {"phone", "mail", "email", "e-mail", "prerequisite-message-id"}
_HEADERS = {"subject", "date", "from"}
_LINKS = {"link", "buglink", "closes"}
_NONPERSON = _LINKS | {"fixes", "subject", "date", "obsoleted-by", "change-id", "base-commit"}
_LINE_RE = re.compile(r"^\s*(\w\S+):\s+(\S.*)", re.I)
_PERSON_RE = re.compile(r"\S+@\S+\.\S+")
_URL_RE = re.compile(r"https?://")
_FIXES_HASH_RE = re.compile(r"^[0-9a-f]{6,}")
_EXTINFO_LINE_RE = re.compile(r"^\s*\[[^]]+]\s*$")


def find_trailers(body: str, followup: bool = False) -> list[b4.LoreTrailer]:
    body = body.split("\n-- \n", 1)[0].strip() + "\n"
    body = _WRAPPED_ADDR_RE.sub(r"\1 \2", _WRAPPED_FIXES_RE.sub(r"\1 \2", body))
    trailers: list[b4.LoreTrailer] = []
    others = False
    was_trailer = False
    for line in body.split("\n"):
        line = line.strip("\r")
        if m := _LINE_RE.search(line):
            oname, ovalue = m.groups()
            lname = oname.lower()
            if lname in _IGNORES or (others and lname in _HEADERS):
                continue
            if followup:
                if not lname.isascii():
                    continue
                if not _PERSON_RE.search(ovalue) and lname not in _NONPERSON:
                    continue
                if _URL_RE.search(ovalue) and lname not in _LINKS:
                    continue
            if lname == "fixes" and not _FIXES_HASH_RE.search(ovalue):
                continue
            ovalue, extinfo = _split_extinfo(ovalue)
            was_trailer = True
            trailers.append(b4.LoreTrailer(name=oname, value=ovalue, extinfo=extinfo))
            continue
        if len(line) > 2 and was_trailer and _EXTINFO_LINE_RE.search(line):
            trailers[-1].extinfo = line
            was_trailer = False
            continue
        was_trailer = False
        others = True
    return trailers


def _split_extinfo(value: str) -> tuple[str, str | None]:
    """b4's ``re.search(r'(.*\\S+)(\\s+#[^#]+)$', value)`` without the backtracking."""
    hash_at = value.rfind("#")
    if hash_at <= 0 or hash_at == len(value) - 1 or not value[hash_at - 1].isspace():
        return value, None
    head = value[:hash_at].rstrip()
    if not head:
        return value, None
    return head, value[len(head) :]


def _to_trailer(ltr: b4.LoreTrailer, mismatch: bool = False) -> Trailer | None:
    kind = _CANONICAL.get(ltr.lname, ltr.name)
    if ltr.type == "person" and ltr.addr:
        name, email = ltr.addr
        return Trailer(kind, name.strip() or email, email.strip().lower(), mismatch)
    if ltr.type == "utility":
        return Trailer(kind, ltr.value.strip(), "", mismatch)
    if ltr.lname in ("reviewed-by", "acked-by", "tested-by"):
        # "Acked-by: Someone" without an address: keep the claim, it has no identity.
        return Trailer(kind, ltr.value.strip(), "", mismatch)
    return None
