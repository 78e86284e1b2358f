"""Statements in mail text that change a series' status: "Applied to …", [GIT PULL] contents,
"I'll fix this in v3".  All functions take a reply's own text (quotes already removed).

Patterns come from the kvmarm archive (2019–2022): "Applied to next, thanks!" (b4 ty, with a
"[n/N] subject / commit: sha" list), "Applied to arm64 (for-next/misc), thanks!", "Queued for
5.7", "Queued patches 1-5, thanks.", "Pulled, thanks.".  Look-alikes that are NOT notices:
"Applied patch ioport.c cleanly.", "I have pulled the latest branch and …", "merged before this".
"""

from __future__ import annotations

import re

from ingest.records import AppliedNotice, PullRequest

_VERBS = ("applied", "queued", "pulled", "picked up", "pushed", "merged")
_NOTICE_RE = re.compile(
    r"""^[ \t]*
    (?:(?:now|also|and|so|ok|okay|thanks|great)[,!]?\s+)?
    (?:(?:i|we)(?:'ve|\s+have)\s+(?:now\s+)?)?
    (?P<verb>applied|queued|pulled|picked\s+up|pushed|merged)
    (?P<rest>[^\n]*)$""",
    re.I | re.M | re.X,
)
# What may follow the verb in a real notice.
_REST_OK_RE = re.compile(
    r"""^(?:\s*$|\s*[,.!:;]|\s+(?:to|for|into|in|on\s+(?!top)|and|with|as\s+a|both|this|these|
    the\s+(?:series|patch|whole|first|last|two|three|fix)|all|patch(?:es)?\s+\d|it\b|,?\s*thanks))""",
    re.I | re.X,
)
_REST_BAD_RE = re.compile(
    r"\b(?:cleanly|locally|on top of|the latest|before|as well|without|yet|fine|ok\b)|\?", re.I
)
_WHERE_RE = re.compile(
    r"""(?:\bto|\binto|\bin)\s+(?P<to>(?:https?://\S+|[\w.+/~-]+)(?:\s*\([^)\n]*\))?)
    |\bfor\s+(?P<for>v?\d+\.\d+(?:-rc\d+)?|-rc\d+|-?next|-?fixes|[\w.+/-]*\d[\w.+/-]*)
    |,\s*(?P<url>https?://\S+)""",
    re.I | re.X,
)
_COUNTERS_RE = re.compile(r"\bpatch(?:es)?\s+(?P<list>\d+(?:\s*(?:-|–|to|,|and|&)\s*\d+)*)", re.I)
_TY_ITEM_RE = re.compile(
    r"^\[(?P<n>\d+)/(?P<total>\d+)\]\s+(?P<subject>.+?)\s*\n"
    r"(?:[ \t]+(?:commit:\s+|https?://\S*/c/)(?P<commit>[0-9a-f]{7,40})\b)?",
    re.M,
)
_WHERE_JUNK = ".,!;:'\""

_RESPIN_WORDS_RE = re.compile(
    r"v\d|version|revision|spin|iteration|round|respin|repost|resend|rebase|posting"
)
_RESPIN_RES = (
    re.compile(
        r"\b(?:i(?:'ll|\s+will)|will|going\s+to)\s+(?:\w+\s+){0,3}?(?:fix|address|change|update|"
        r"rework|drop|respin|repost|resend|send|fold|split|rename|move)\b[^.\n]{0,80}?"
        r"\b(?:v\d+|next\s+(?:version|revision|spin|iteration|round|respin|posting)|new\s+version|"
        r"respin|repost)\b[^.\n]*",
        re.I,
    ),
    re.compile(
        r"\bplease\s+(?:respin|repost|resend|rebase|send\s+(?:a|an)\s+(?:v\d+|new\s+version|"
        r"updated\s+version))\b[^.\n]*",
        re.I,
    ),
)


def find_applied_notice(text: str) -> AppliedNotice | None:
    """The first "Applied/Queued/Pulled …" statement in a reply's own text, if any."""
    low = text.lower()
    if not any(verb in low for verb in _VERBS):
        return None
    for m in _NOTICE_RE.finditer(text):
        if m.group("rest").lstrip().startswith("?"):
            continue  # "Applied?" asks, it does not tell
        rest = _first_clause(m.group("rest"))
        if not _starts_sentence(text, m.start()):
            continue  # "…noticed that Will\nmerged it." wrapped onto a new line
        if not _REST_OK_RE.match(rest) or _REST_BAD_RE.search(rest):
            continue
        verb = m.group("verb").lower().split()[0]
        return AppliedNotice(
            where=_find_where(rest),
            items=_find_ty_items(text[m.end() :]),
            counters=_find_counters(rest),
            verb={"picked": "applied", "pushed": "applied", "merged": "applied"}.get(verb, verb),
        )
    return None


def _starts_sentence(text: str, at: int) -> bool:
    before = text[:at]
    if not before.strip() or before.endswith("\n\n") or before.rstrip(" \t").endswith("\n\n"):
        return True
    return before.rstrip()[-1] in ".!?:>)"


def _first_clause(rest: str) -> str:
    """What the notice says about itself: up to the end of its first sentence."""
    return re.split(r"[.!?](?:\s|$)|,\s*thanks?\b|,\s*thx\b", rest, maxsplit=1, flags=re.I)[0]


def _find_where(rest: str) -> str | None:
    m = _WHERE_RE.search(rest)
    if not m:
        return None
    where = m.group("to") or m.group("for") or m.group("url") or ""
    where = where.strip().rstrip(_WHERE_JUNK)
    return where or None


def _find_counters(rest: str) -> tuple[int, ...]:
    m = _COUNTERS_RE.search(rest)
    if not m:
        return ()
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|and|&)\s*", m.group("list")):
        bounds = re.split(r"\s*(?:-|–|to)\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            if 0 < lo <= hi <= lo + 200:
                numbers.extend(range(lo, hi + 1))
        elif part.isdigit():
            numbers.append(int(part))
    return tuple(dict.fromkeys(numbers))


def _find_ty_items(text: str) -> tuple[tuple[int | None, str, str | None], ...]:
    """b4 ty's list: "[1/3] subject" followed by "      commit: <sha>"."""
    items = []
    for m in _TY_ITEM_RE.finditer(text):
        items.append((int(m.group("n")), m.group("subject"), m.group("commit")))
    return tuple(items)


def find_respin(text: str) -> str | None:
    """A promise or request of a new version ("I'll fix it in v3", "please respin")."""
    for line in _lines_with(_RESPIN_WORDS_RE, text, text.lower()):
        for pattern in _RESPIN_RES:
            if m := pattern.search(line):
                return " ".join(m.group(0).split())[:200]
    return None


def _lines_with(pattern: re.Pattern[str], text: str, low: str) -> list[str]:
    """Lines of ``text`` where ``pattern`` matches ``low`` (its lower-cased copy): a cheap,
    case-sensitive filter before costly case-insensitive regexes."""
    lines: dict[int, str] = {}
    for m in pattern.finditer(low):
        start = text.rfind("\n", 0, m.start()) + 1
        if start not in lines:
            end = text.find("\n", m.end())
            lines[start] = text[start : end if end >= 0 else len(text)]
    return list(lines.values())


_PULL_URL_RE = re.compile(
    r"are available in the [Gg]it repository at:?\s*\n(?P<url>(?:[ \t]*\S[^\n]*\n){1,2})"
)
_SHORTLOG_AUTHOR_RE = re.compile(r"^(?P<author>\S[^\n]*?)\s+\(\d+\):\s*$")


def parse_pull_request(text: str) -> PullRequest:
    """Repository URL and the shortlog of a ``git request-pull`` message."""
    url = None
    if m := _PULL_URL_RE.search(text):
        lines = [ln.strip() for ln in m.group("url").splitlines() if ln.strip()]
        # "URL ref" wrapped onto two lines: git itself joins them with a space.
        if len(lines) == 2 and not re.match(r"^for you to fetch", lines[1], re.I):
            url = lines[0] + " " + lines[1]
        elif lines:
            url = lines[0]
        if url:
            url = " ".join(url.split())
    return PullRequest(url=url, shortlog=_parse_shortlog(text))


def _parse_shortlog(text: str) -> tuple[tuple[str, str], ...]:
    entries: list[tuple[str, str]] = []
    author: str | None = None
    for line in text.splitlines():
        if m := _SHORTLOG_AUTHOR_RE.match(line):
            author = m.group("author")
            continue
        if author and line.startswith((" ", "\t")) and line.strip():
            entries.append((author, " ".join(line.split())))
            continue
        author = None  # a blank line ends an author's block
    return tuple(entries)
