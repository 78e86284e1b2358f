"""Does a summary claim more than the facts show?  A summary that says someone reviewed,
acked, tested, applied (queued, merged, picked up, pulled) or NAKed something must agree with
the entry's trailer ledger and status evidence — whether the model invented the claim or a
mail told it what to say.

    "Marc Zyngier reviewed everything."      Marc gave no Reviewed-by → unsupported
    "Carol acked the series."                Carol Maintainer gave Acked-by → supported
    "The series was applied to kvmarm/next." status is applied → supported

People are recognised by full name, or by a first or last name that fits exactly the
participants (``Marc`` → Marc Zyngier); a claim by or about anyone else (a known sender
outside the thread, a name never seen) is unsupported, since the facts only know the
thread's people.  Claims without a person ("was applied", "has been reviewed")
need the status or at least one trailer of that kind.  Negated claims ("has not reviewed")
are not matched: the patterns only accept adverbs between the subject and the verb.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.digest.grounding import Directory, norm_name

if TYPE_CHECKING:
    from bot.digest.summary import EntryPerson, Summary, SummaryRequest

REVIEWED, ACKED, TESTED, APPLIED, NAKED = "reviewed", "acked", "tested", "applied", "NAKed"
TRAILER_OF = {REVIEWED: "Reviewed-by", ACKED: "Acked-by", TESTED: "Tested-by"}
APPLIED_STATES = {"applied", "pulled", "partially-applied"}

_VERB_EN = {
    "reviewed": REVIEWED,
    "acked": ACKED,
    "ack'd": ACKED,
    "tested": TESTED,
    "applied": APPLIED,
    "queued": APPLIED,
    "merged": APPLIED,
    "picked up": APPLIED,
    "pulled": APPLIED,
    "took": APPLIED,
    "naked": NAKED,
    "nacked": NAKED,
    "nak'd": NAKED,
    "rejected": NAKED,
}
_VERB_ZH = {
    "审阅": REVIEWED,
    "审查": REVIEWED,
    "测试": TESTED,
    "合入": APPLIED,
    "应用": APPLIED,
    "合并": APPLIED,
    "接收": APPLIED,
    "拒绝": NAKED,
}
_TRAILER_WORD = {
    "reviewed-by": REVIEWED,
    "acked-by": ACKED,
    "tested-by": TESTED,
    "nacked-by": NAKED,
    "ack": ACKED,
    "nak": NAKED,
    "review tag": REVIEWED,
}
_EN = "(?i:" + "|".join(sorted((re.escape(v) for v in _VERB_EN), key=len, reverse=True)) + ")"
_ZH = "|".join(_VERB_ZH)
_TRAILERS = r"(?i:reviewed-by|acked-by|tested-by|nacked-by|review tag|ack|nak)"
_NAME_WORD = r"[A-Z\u00c0-\u00de][A-Za-z\u00c0-\u024f'’.-]*"
_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}}(?:[ \t]*\([^()\n]{{1,40}}\))?"
_NAMES = rf"{_NAME}(?:(?:,[ \t]*|[ \t]+and[ \t]+|[ \t]*&[ \t]*|[ \t]*和[ \t]*|、){_NAME}){{0,5}}"
_ADVERBS = (
    r"(?:[ \t]+(?:has|have|had|also|already|then|later|now|finally|formally|quickly|just|"
    r"both|all|since|eventually|promptly|duly|kindly))*"
)
_ZH_ADVERBS = r"[ \t]*(?:已经|已|也|还|都|随后|最终|并)*[ \t]*"

_ACTIVE_RE = re.compile(rf"(?<![\w.'’-])({_NAMES}){_ADVERBS}[ \t]+({_EN})\b(?!-)")
_GAVE_RE = re.compile(
    rf"(?<![\w.'’-])({_NAMES}){_ADVERBS}[ \t]+(?:gave|provided|sent|added|offered)[ \t]+"
    rf"(?:(?:his|her|their|a|an|the|formal)[ \t]+)*({_TRAILERS})s?\b",
)
_POSSESSIVE_RE = re.compile(rf"(?<![\w.'’-])({_NAME})['’]s[ \t]+({_TRAILERS})s?\b")
_FROM_RE = re.compile(rf"\b({_TRAILERS})s?(?:[ \t]+tags?)?[ \t]+(?:from|by)[ \t]+({_NAMES})")
_PASSIVE_BY_RE = re.compile(rf"\b({_EN})[ \t]+by[ \t]+({_NAMES})")
_ZH_ACTIVE_RE = re.compile(
    rf"({_NAMES}){_ZH_ADVERBS}(?:(?:给出|提供|发送)了?[ \t]*({_TRAILERS})|({_ZH})了?)"
)
_ZH_PASSIVE_RE = re.compile(rf"(?:由|被)[ \t]*({_NAMES})[ \t]*({_ZH})")
_NOBODY_RE = re.compile(
    r"\b(?i:was|were|is|are|has[ \t]+been|have[ \t]+been|got|gets|had[ \t]+been)"
    rf"(?:[ \t]+(?i:now|already|also|then|finally|formally|eventually))*[ \t]+({_EN})\b",
)
_NAK_TEXT_RE = re.compile(r"\bNA[CK]K(?:ed|'d)?(?:-by)?\b|\[gives Nacked-by\]")
_PAREN_RE = re.compile(r"[ \t]*\([^()]*\)")
_POSSESSIVE_RE_END = re.compile(r"['’]s$")
_SPLIT_NAMES_RE = re.compile(r",[ \t]*|[ \t]+and[ \t]+|[ \t]*&[ \t]*|[ \t]*和[ \t]*|、")
_NOT_NAMES = {
    "the", "this", "that", "these", "those", "it", "he", "she", "they", "we", "i", "you",
    "everyone", "everybody", "nobody", "someone", "somebody", "all", "both", "each", "patch",
    "patches", "series", "version", "reviewers", "maintainers", "maintainer", "reviewer",
    "author", "which", "who", "also", "and", "but", "then", "later", "kvm", "arm64", "linux",
    "kernel", "one", "two", "three", "others", "many", "several", "some", "most", "v1", "v2",
    "there", "here", "its", "his", "her", "their", "our", "a", "an", "in", "on", "after",
    "before", "when", "once", "since", "finally", "however", "meanwhile", "overall", "eventually",
    "so", "thus", "as", "if", "now", "earlier", "previously", "subsequently", "nothing", "none",
    "no", "not", "everything", "cover", "letter", "change", "changes", "fix", "fixes",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str  # reviewed | acked | tested | applied | NAKed
    who: str | None  # the name as written; None: "was applied", "has been reviewed"


def claims_in(text: str, names: Iterable[str] = ()) -> list[Claim]:
    """Every claim of a review, ack, test, application or NAK in ``text``; ``names`` are
    also looked for as written, whatever their case ("linmiaohe reviewed …")."""
    out: list[Claim] = []
    for name in names:
        said = re.compile(rf"(?<![\w.'’-]){re.escape(name)}{_ADVERBS}[ \t]+({_EN})\b(?!-)", re.I)
        out += [Claim(_VERB_EN[m.group(1).lower()], name) for m in said.finditer(text)]
    for m in _ACTIVE_RE.finditer(text):
        out += _each(m.group(1), _VERB_EN[m.group(2).lower()])
    for m in _GAVE_RE.finditer(text):
        out += _each(m.group(1), _TRAILER_WORD[m.group(2).lower()])
    for m in _POSSESSIVE_RE.finditer(text):
        out += _each(m.group(1), _TRAILER_WORD[m.group(2).lower()])
    for m in _FROM_RE.finditer(text):
        out += _each(m.group(2), _TRAILER_WORD[m.group(1).lower()])
    for m in _PASSIVE_BY_RE.finditer(text):
        out += _each(m.group(2), _VERB_EN[m.group(1).lower()])
    for m in _ZH_ACTIVE_RE.finditer(text):
        kind = _TRAILER_WORD[m.group(2).lower()] if m.group(2) else _VERB_ZH[m.group(3)]
        out += _each(m.group(1), kind)
    for m in _ZH_PASSIVE_RE.finditer(text):
        out += _each(m.group(1), _VERB_ZH[m.group(2)])
    for m in _NOBODY_RE.finditer(text):
        out.append(Claim(_VERB_EN[m.group(1).lower()], None))
    return list(dict.fromkeys(out))


def _each(names: str, kind: str) -> list[Claim]:
    """One claim per name of "Bob, Carol and Dave"; leading non-names ("Then Marc") go."""
    out = []
    for name in _SPLIT_NAMES_RE.split(names):
        name = _PAREN_RE.sub("", name)  # "Russell King (Oracle)"
        words = _POSSESSIVE_RE_END.sub("", name.strip().rstrip(".")).split()
        while words and words[0].casefold() in _NOT_NAMES:
            words = words[1:]
        if words:
            out.append(Claim(kind, " ".join(words)))
    return out


def check_claims(summary: Summary, request: SummaryRequest) -> list[str]:
    """Why a summary claims more than the facts show (empty list: it does not)."""
    text = "\n".join(t for t in (summary.background or "", summary.this_week) if t)
    claims = unsupported_claims(text, request)
    return ["claims the facts do not show: " + ", ".join(claims)] if claims else []


def unsupported_claims(text: str, request: SummaryRequest) -> list[str]:
    """Each claim in ``text`` the entry's facts do not support, said in a few words."""
    problems = []
    names = {p.name for p in request.people if p.name and "@" not in p.name}
    for claim in claims_in(text, sorted(names)):
        if not _supported(claim, request):
            who = claim.who or "it"
            problems.append(f"{who} {claim.kind}")
    return list(dict.fromkeys(problems))


def _supported(claim: Claim, request: SummaryRequest) -> bool:
    facts = request.facts
    if claim.who is None:
        if claim.kind == APPLIED:
            return facts.status in APPLIED_STATES
        if claim.kind == NAKED:
            return any(_NAK_TEXT_RE.search(m.text) for m in (*request.earlier, *request.mails))
        return any(t.kind == TRAILER_OF[claim.kind] for t in facts.ledger)
    people = resolve(claim.who, request.people, request.directory)
    if not people:  # nobody in the thread: the facts cannot show it
        return False
    if claim.kind in TRAILER_OF:
        wanted = TRAILER_OF[claim.kind]
        return any(t.kind == wanted and _is(t.name, t.email, people) for t in facts.ledger)
    if claim.kind == APPLIED:
        return facts.status in APPLIED_STATES and any(
            _is(p.name, p.email, people) for p in facts.status_people
        )
    return any(  # NAKed: a mail of theirs says NAK
        _NAK_TEXT_RE.search(m.text) and _is(m.name, m.email, people)
        for m in (*request.earlier, *request.mails)
    )


def resolve(name: str, participants: Iterable[EntryPerson], directory: Directory) -> list | None:
    """The participants ``name`` may refer to; [] for a known person outside the thread;
    None when ``name`` is not recognisably a person's name.  Leading words that fit nobody
    ("Overall Bob") are dropped."""
    people = list(participants)
    words = norm_name(name).split()
    outsider = False
    for i in range(len(words)):
        found = _resolve_words(words[i:], people, directory)
        if found:
            return found
        outsider = outsider or found == []
    return [] if outsider else None


def _resolve_words(words: list[str], people: list, directory: Directory) -> list | None:
    key = " ".join(words)
    matches = [
        p
        for p in people
        if p.name and (norm_name(p.name) == key or set(words) <= set(norm_name(p.name).split()))
    ]
    if matches:
        return matches
    emails = directory.names.get(key)
    if emails:
        return [p for p in people if p.email.lower() in emails]
    if len(words) == 1 and directory.knows_first_name(key):
        return []
    return None


def _is(name: str, email: str, people: list) -> bool:
    key = norm_name(name)
    return any(
        email.lower() == p.email.lower() or (key and key == norm_name(p.name)) for p in people
    )
