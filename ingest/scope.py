"""What a follow-up trailer covers, from the words around it.  Pure, and cheap: it only
runs on replies that carry trailers.

Reviewers often say what their trailer is for: "For the series:", "For 1-3", "You can add
my Reviewed-by to patch 1 and 2", "For the others:", "To the arm/arm64 and generic parts.",
"Acked-by: … # kvm/arm64", "For the formal patch, please add: …".  ``find_scope`` reads the
paragraph just above the trailer block, the line just below it and the trailer's own
``# comment`` and returns a ``Scope`` (or None: b4's rule — cover → every patch, reply →
that patch).  ``resolve`` turns a scope into the patch numbers of one posting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.records import Scope

_TRAILER_LINE_RE = re.compile(
    r"^[ \t]*(?:Reviewed|Acked|Tested|Reviewed-and-tested|Reported-and-tested)-by:", re.I
)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_WORDS.update({"nine": 9, "ten": 10, "both": 2})
_COUNT = r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten)"
_NUM = r"#?\d+(?:/\d+)?"
_SEP = r"(?:\s*(?:-|–|~|\.\.\.?|\bto\b|\bthrough\b|\bthru\b)\s*)"
_LIST = rf"{_NUM}(?:(?:{_SEP}|\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*){_NUM})*"

_ELSEWHERE_RE = re.compile(
    r"\bwrong (?:thread|series|patch|version|email|mail)\b"
    r"|\bmeant (?:for|to go to|to reply to) (?:the )?(?:other|another|v\d|previous|next)\b"
    r"|\bnot (?:meant )?for this (?:patch|series|version|thread)\b"
    r"|\bfor the (?:formal|proper|final|real) patch\b",
    re.I,
)
_NUMBERS_RE = re.compile(
    rf"^\(?\s*(?:\w+,\s*)?(?:for|to)\s+(?:the\s+)?(?:patch(?:es)?\s*|#)?({_LIST})"
    rf"(?=\s*[):,]|\.?\s*$|\s+(?:of|in|from)\s+(?:the|this)\b|\s+\()",
    re.I,
)
_PATCH_NUMBERS_RE = re.compile(
    rf"(?:^\(?\s*(?:\w+,\s*)?|\b(?:add|apply|take|have|give|carry)\b[^.]*?\s)(?:for|to|on)\s+"
    rf"(?:the\s+)?patch(?:es)?\s*({_LIST})",
    re.I,
)
# "Patches 1-3 look good to me:", "Patch 2 is fine too."
_LEADING_PATCHES_RE = re.compile(
    rf"^\(?\s*patch(?:es)?\s*({_LIST})\s+(?:(?:all|both)\s+)?(?:looks?|seems?|are|is)\s+"
    r"(?:(?:all|really|very)\s+)?(?:good|fine|ok|okay|great|correct|sane|alright|right)\b",
    re.I,
)
_FIRST_LAST_RE = re.compile(
    rf"\b(?:for|to)\s+the\s+(first|last)\s+({_COUNT})(?:\s+patch(?:es)?|\s+ones)?"
    r"(?=\s*[):,]|\.?\s*$|\s+(?:of|in)\s+(?:the|this)\b)",
    re.I,
)
_EXCEPT_RE = re.compile(
    rf"\b(?:except|excluding|but|other than|apart from|besides)\s+(?:for\s+)?(?:patch(?:es)?\s*)?"
    rf"({_LIST}|(?:my own|mine)\b)",
    re.I,
)
_SERIES_RE = re.compile(
    r"\b(?:whole|entire|complete|full)\s+(?:patch\s*)?(?:series|set|patchset|thing)\b"
    r"|^\(?\s*(?:\w+,\s*)?(?:for|to|on)\s+(?:the|this|all|every)\s+(?:series|set|patchset|"
    r"patches|lot)\b"
    r"|\b(?:my|the)\s+(?:ack|acks|r-b|rb|tag|tags|review)\s+(?:for|to|on)\s+(?:the|this)"
    r"\s+series\b"
    r"|^\(?\s*(?:for\s+)?(?:the\s+)?series\s*\)?[:.]?$"
    r"|^(?:for\s+)?all\s+(?:the\s+)?patches\b"
    r"|\btested\s+(?:this|the)\s+series\b",
    re.I,
)
_OTHERS_RE = re.compile(
    r"^\(?\s*(?:and\s+)?(?:for|to)\s+(?:the\s+)?(?:others|rest|remaining\s+(?:ones|patches)|"
    r"other\s+(?:ones|patches))\b",
    re.I,
)
_COUNTED_RE = re.compile(
    rf"^\(?\s*(?:\w+,\s*)?(?:for|to)\s+(?:the\s+)?(both|{_COUNT})\s+([\w/+.-]+(?:\s+[\w/+.-]+)?"
    r"\s+)?patch(?:es)?\b",
    re.I,
)
_AREA_RE = re.compile(
    r"^\(?\s*(?:[\w ]{1,25},\s*)?(?:for|to)\s+(?:the\s+)?([\w/.+ -]{2,40}?)\s*"
    r"(?:\s(?:bits|parts?|changes|side|portions?|pieces|hunks|stuff|things|drivers?)\b[^:,.]*)?"
    r"\s*\)?\s*[:.,]?\s*$",
    re.I,
)
_IN_PARENS_RE = re.compile(r"\(\s*for\s+([\w/.+ -]{2,30}?)\s*\)", re.I)
# Words that say "this mail's patch" or nothing about scope at all.
_NOT_AREA = {
    "this", "the", "that", "patch", "patches", "series", "code", "change", "changes", "version",
    "updated", "current", "content", "above", "below", "record", "what", "it's", "its", "worth",
    "now", "me", "my", "part", "parts", "bits", "whole", "both", "all", "it", "formal", "one",
    "v2", "v3", "merging", "whichever", "tree", "seems", "best", "future", "a", "an", "of",
    "and", "fix", "fixes", "stashed", "new", "set", "rest", "others", "you", "can", "add",
    "feel", "free", "to", "please", "take", "have", "i", "am", "happy", "with",
}  # fmt: skip
_ARCHES = {
    "arm", "arm64", "aarch64", "arm32", "x86", "vmx", "svm", "nvmx", "nsvm", "ppc", "powerpc",
    "book3s", "booke", "e500", "e500mc", "s390", "mips", "riscv", "risc-v", "loongarch", "xen",
}  # fmt: skip


def find_scopes(text: str, given: list[tuple[str, str]]) -> list[Scope | None]:
    """One scope per (kind, address) trailer given in ``text``, None where none is said."""
    lines = text.split("\n")
    at = [i for i, line in enumerate(lines) if _TRAILER_LINE_RE.match(line)]
    if not at:
        return [None] * len(given)
    block = find_block_scope(_above(lines, at[0]), _below(lines, at[-1]))
    out: list[Scope | None] = []
    for kind, address in given:
        line = next((lines[i] for i in at if address and address in lines[i].lower()), "")
        own = _comment(line)
        scope = block
        if scope is not None and scope.tested_only and kind != "Tested-by":
            scope = None
        out.append(scope or own)
    return out


def _above(lines: list[str], first: int) -> list[str]:
    """The paragraph just above the trailer block (blank lines between are skipped)."""
    i = first - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    para: list[str] = []
    while i >= 0 and lines[i].strip() and not lines[i].lstrip().startswith(">"):
        para.append(lines[i].strip())
        i -= 1
    text = " ".join(reversed(para))
    return _SENTENCE_END_RE.split(text)[-2:] if text else []


def _below(lines: list[str], last: int) -> str | None:
    """A short line right under the block: "to the whole series.", "for the arm64 side."."""
    i = last + 1
    while i < len(lines) and (not lines[i].strip() or _TRAILER_LINE_RE.match(lines[i])):
        i += 1
    if i < len(lines) and len(lines[i]) < 60 and re.match(r"\s*(?:to|for)\s", lines[i], re.I):
        return lines[i].strip()
    return None


def _comment(line: str) -> Scope | None:
    """``Acked-by: X <x@y> # kvm/arm64`` or ``… (powerpc)``: the area the trailer is for."""
    tail = line.rsplit(">", 1)[1].strip() if ">" in line else ""
    m = re.match(r"^(?:#\s*(?:for\s+)?|\((?:for\s+)?)([\w/.+ -]{2,30}?)\)?$", tail)
    if m is None:
        return None
    areas = _area_words(m.group(1))
    return Scope(phrase=tail, areas=areas) if areas else None


def find_block_scope(above: list[str], below: str | None) -> Scope | None:
    """The scope said by the (last two) sentences above a trailer block or the line below it.

    Negation wins, then numbers, then whole-series words; "the others", counted patches and
    subject areas are read only from the sentence right above the block or the line below.
    """
    sentences = [s.strip() for s in above if s.strip()]
    decisive = sentences[-1:]
    if below:
        sentences.append(below)
        decisive.append(below)
    for s in sentences:
        if _ELSEWHERE_RE.search(s):
            return Scope(phrase=s, elsewhere=True)
    for s in reversed(sentences):
        if (found := _numbered(s)) is not None:
            return found
    for s in sentences:
        if _SERIES_RE.search(s):
            tested = bool(re.search(r"\btest", s, re.I)) and not re.search(
                r"\b(?:for|to|on) (?:the|this) (?:whole |entire )?series\b", s, re.I
            )
            return Scope(phrase=s, series=True, tested_only=tested)
    for s in decisive:
        if _OTHERS_RE.search(s):
            return Scope(phrase=s, others=True)
        if (m := _COUNTED_RE.search(s)) is not None:
            count = _WORDS.get(m.group(1).lower()) or int(m.group(1))
            return Scope(phrase=s, count=count, areas=_area_words(m.group(2) or ""))
        if (areas := _area_of(s)) is not None:
            return Scope(phrase=s, areas=areas)
    return None


def _numbered(s: str) -> Scope | None:
    if (m := _FIRST_LAST_RE.search(s)) is not None:
        n = _WORDS.get(m.group(2).lower()) or int(m.group(2))
        return Scope(
            phrase=s,
            first=n if m.group(1).lower() == "first" else 0,
            last=0 if m.group(1).lower() == "first" else n,
        )
    if (m := _EXCEPT_RE.search(s)) is not None and re.search(
        r"\b(?:all|every|everything|series|patches|the rest)\b", s, re.I
    ):
        if m.group(1).lower() in ("my own", "mine"):
            return Scope(phrase=s, series=True)
        return Scope(phrase=s, series=True, exclude=parse_numbers(m.group(1)))
    m = _PATCH_NUMBERS_RE.search(s) or _NUMBERS_RE.match(s) or _LEADING_PATCHES_RE.match(s)
    if m is not None and (numbers := parse_numbers(m.group(1))):
        return Scope(phrase=s, numbers=numbers)
    return None


def parse_numbers(text: str) -> tuple[int, ...]:
    """ "1-3" → (1, 2, 3); "1, 3 and 4" → (1, 3, 4); "6~8", "1..3", "7 to 9"; "2/5" → (2,)."""
    out: list[int] = []
    tokens = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*", text.strip())
    for token in tokens:
        parts = re.split(_SEP, token)
        ends = [int(re.sub(r"/\d+$", "", p.strip().lstrip("#"))) for p in parts if p.strip()]
        if len(ends) == 2 and 0 < ends[0] <= ends[1] <= ends[0] + 200:
            out.extend(range(ends[0], ends[1] + 1))
        elif len(ends) == 1:
            out.append(ends[0])
    return tuple(sorted(set(n for n in out if n > 0)))


def _area_of(s: str) -> tuple[str, ...] | None:
    m = _IN_PARENS_RE.search(s) or _AREA_RE.match(s)
    if m is None:
        return None
    areas = _area_words(m.group(1))
    return areas or None


def _area_words(text: str) -> tuple[str, ...]:
    words = re.split(r"[\s/,]+|\band\b", text.lower())
    if words and words[0].endswith("ing"):
        return ()  # "for merging via …", "for testing": a purpose, not a part of the series
    kept = (w.strip(".:-") for w in words)
    return tuple(w for w in kept if len(w) > 1 and w not in _NOT_AREA and not _VERSION_RE.match(w))


_VERSION_RE = re.compile(r"^v\d+$")


# ---- resolution against a posting --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    numbers: tuple[int, ...]  # the patches the trailer counts on
    unresolved: bool = False  # named a scope we could not map to patches: counted nowhere


def subject_tokens(title: str) -> set[str]:
    """ "KVM: arm64: Free sve_state" → {"kvm", "arm64"}: the subsystem prefixes of a title."""
    heads = title.split(": ")[:-1]
    return {w for h in heads for w in re.split(r"[\s/,]+", h.lower()) if w}


def area_matches(areas: Iterable[str], tokens: set[str], *, tested: bool = False) -> bool:
    """A patch whose subject prefixes name the area ("arm" covers "arm64"); "generic" and, for
    Tested-by, an architecture also cover patches that name no architecture."""
    areas = set(areas)
    arches = {a for a in areas if a in _ARCHES}
    others = areas - arches - {"generic", "common"}
    patch_arches = {t for t in tokens if t in _ARCHES}
    if any(not any(t.startswith(a) for t in tokens) for a in others):
        return False
    if arches:
        if any(t.startswith(a) for a in arches for t in patch_arches):
            return True
        return not patch_arches and ("generic" in areas or "common" in areas or tested)
    if "generic" in areas or "common" in areas:
        return not patch_arches
    return bool(others)


def resolve(
    scope: Scope,
    numbers: list[int],
    titles: dict[int, str],
    *,
    replied: int | None,
    kind: str,
    holders: frozenset[int] | set[int] = frozenset(),
) -> Resolved:
    """The patch numbers of one posting a scoped trailer counts on.

    ``replied`` is the patch the mail answers (None for the cover); ``holders`` the patches
    that already carry this person's trailer of this kind (for "the others").
    """
    if scope.elsewhere:
        return Resolved((), unresolved=True)
    if scope.series:
        return Resolved(tuple(n for n in numbers if n not in scope.exclude))
    if scope.numbers:
        hit = tuple(n for n in numbers if n in scope.numbers)
        return Resolved(hit, unresolved=not hit)
    if scope.first or scope.last:
        picked = numbers[: scope.first] if scope.first else numbers[-scope.last :]
        return Resolved(tuple(picked))
    if scope.others:
        rest = tuple(n for n in numbers if n not in holders)
        return Resolved(rest, unresolved=not rest)
    tested = kind == "Tested-by"
    if scope.count is not None:
        areas = scope.areas or (
            tuple(subject_tokens(titles[replied]) - {"kvm"}) if replied in titles else ()
        )
        hit = tuple(n for n in numbers if area_matches(areas, subject_tokens(titles[n])))
        if len(hit) == scope.count and (replied is None or replied in hit):
            return Resolved(hit)
        if replied is None and not scope.areas and len(numbers) == scope.count:
            return Resolved(tuple(numbers))  # "for both patches" on the cover of two
        if replied is not None:
            return Resolved((replied,))
        return Resolved((), unresolved=True)
    if replied is not None:
        return Resolved((replied,))  # an area of the one patch answered is part of it
    hit = tuple(
        n for n in numbers if area_matches(scope.areas, subject_tokens(titles[n]), tested=tested)
    )
    if not hit and tested:
        return Resolved(tuple(numbers))  # "# on Juno", "(rk3399)": where it was tested
    return Resolved(hit, unresolved=not hit)
