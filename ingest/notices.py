"""Statements in mail text that change a series' status: "Applied to …", [GIT PULL] contents,
"I'll fix this in v3".  All functions take a reply's own text (quotes already removed).

Patterns come from the kvmarm archive (2019–2022): "Applied to next, thanks!" (b4 ty, with a
"[n/N] subject / commit: sha" list), "Applied to arm64 (for-next/misc), thanks!", "Queued for
5.7", "Queued patches 1-5, thanks.", "Pulled, thanks.".  Look-alikes that are NOT notices:
"Applied patch ioport.c cleanly.", "I have pulled the latest branch and …", "merged before this".

What a statement says is read here; whether its sender may say it (a maintainer, not a
tester or the author) is decided when deriving (ingest.applies), where the whole archive is
known.  Here we only refuse what is never an apply whoever says it: "I applied the series
and tested it on …" (a tester), "applied locally", "picked up for v3" (the author's next
version).  Tentative ("queued", "… for now") and whole-series ("Applied the series") are
marked; "dropped from my tree", "reverted" and the stable team's "… has been added to the
5.10-stable tree" are notices too.
"""

from __future__ import annotations

import re

from ingest.records import AppliedNotice, PullRequest

_VERBS = ("applied", "queued", "pulled", "picked up", "pushed", "merged")
_NOTICE_RE = re.compile(
    r"""^[ \t]*
    (?:(?:now|also|and|so|ok|okay|thanks|great)[,!]?\s+)?
    (?:(?:i|we)(?:'ve|\s+have)?\s+(?:now\s+|also\s+|just\s+)?)?
    (?P<verb>applied|queued|pulled|picked\s+up|pushed|merged)
    (?P<rest>[^\n]*)$""",
    re.I | re.M | re.X,
)
# What may follow the verb in a real notice.
_REST_OK_RE = re.compile(
    r"""^(?:\s*$|\s*[,.!:;]|\s+(?:to|for|into|in|on\s+(?!top)|and|with|as\s+a|both|this|these|
    the\s+(?:series|patch|whole|first|last|two|three|fix)|all|patch(?:es)?\s+\d|\d+\s*(?:-|,|and)\s*\d|
    it\b|,?\s*thanks))""",
    re.I | re.X,
)
_REST_BAD_RE = re.compile(
    r"\b(?:cleanly|(?<!only\s)locally|on top of|the latest|before|as well|without|yet|fine|ok\b|"
    r"rebased?|on\s+(?:v?\d|linux|mainline|a\b|my\b))|\?",
    re.I,
)
_WHERE_RE = re.compile(
    r"""\bto\s+the\s+(?P<tree>[\w.+/-]+\s+(?:tree|branch|queue))\b
    |(?:\bto|\binto|\bin)\s+(?P<to>(?:https?://\S+|[\w.+/~-]+)(?:\s*\([^)\n]*\))?)
    |\bfor\s+(?P<for>v?\d+\.\d+(?:-rc\d+)?|-rc\d+|-?next|-?fixes|[\w.+/-]*\d[\w.+/-]*)
    |,\s*(?P<url>https?://\S+)""",
    re.I | re.X,
)
_COUNTERS_RE = re.compile(
    r"(?:\bpatch(?:es)?\s+|^\s*(?:and\s+)?)"
    r"(?P<list>\d+(?:\s*(?:-|–|to|,|and|&)\s*\d+)*)\b(?![.\d])",
    re.I,
)
_TY_ITEM_RE = re.compile(
    r"^\[(?P<n>\d+)/(?P<total>\d+)\]\s+(?P<subject>.+?)\s*\n"
    r"(?:[ \t]+(?:commit:\s+|https?://\S*/c/)(?P<commit>[0-9a-f]{7,40})\b)?",
    re.M,
)
_WHERE_JUNK = ".,!;:'\""
_EXCLUDED_RE = re.compile(
    r"\b(?:apart\s+from|except(?:\s+for)?|minus|but\s+not|other\s+than|save\s+for)\s+"
    r"(?:(?:patch(?:es)?|#)\s*)?(?P<list>\d+(?:\s*(?:-|–|to|,|and|&)\s*#?\d+)*)",
    re.I,
)
# In the same sentence as the verb: someone who applied it to try it, not to merge it.
_TRIED_RE = re.compile(
    r"\b(?:test(?:ed|ing|s)?|boot(?:ed|s|ing)?|(?<!only\s)locally|run\s+(?:it|the|some|my)|"
    r"ran\s+|on\s+my\s+(?:machine|board|system|box|setup|side)|"
    r"my\s+(?:local\s+)?(?:tree|branch|repo|series|v\d+)\b|next\s+(?:version|spin|revision|"
    r"iteration|round|posting))",
    re.I,
)
_OWN_VERSION_RE = re.compile(r"^v\d+$", re.I)
# Test words that are names, not trying: URLs, paths ("…/kvm-unit-tests/…"), the test suites,
# and a maintainer's "for (wider) testing in -next" (tentative, see _TENTATIVE_RE).
_NOT_TRYING_RE = re.compile(
    r"\S*(?:/|://)\S*|\bkvm-unit-tests\b|\bselftests?\b|\bfor\s+(?:\w+\s+)?testing\b", re.I
)
_TENTATIVE_RE = re.compile(
    r"\bfor\s+now\b|\bfor\s+the\s+time\s+being\b|\btentative|\bonly\s+locally\b|"
    r"\buntil\b|\bprovisional|\bfor\s+(?:\w+\s+)?testing\b",
    re.I,
)
_WHOLE_RE = re.compile(r"\b(?:series|set|patchset|whole|all|everything|these)\b", re.I)
_DROP_RE = re.compile(
    r"""^[ \t]*(?:(?:now|so|ok|okay|and)[,!]?\s+)?
    (?:(?:i|we)(?:'ve|\s+have|'ll|\s+will)?\s+(?:now\s+|just\s+)?)?
    (?P<verb>dropped|drop|reverted|revert|removed|remove|unqueued|unqueue)\s+
    (?P<what>(?:it|this|that|them|these|those|both|the|this|patch|patches|series|one|\d|[\s,-])
    [^\n]{0,60}?)?
    \s*\b(?:from|out\s+of)\s+(?P<where>(?:my|the)\s+(?:[\w/.-]+\s+)?(?:queue|tree|branch|next)\b|
    [\w.+-]*/[\w./+-]+|-?next|kvmarm[\w/.-]*|\d+\.\d+[\w.-]*)""",
    re.I | re.M | re.X,
)
_DROPPED_PASSIVE_RE = re.compile(
    r"^[ \t]*(?:both\s+patches|this\s+(?:patch|series)|it|these|the\s+series)\s+(?:is\s+|are\s+)?"
    r"(?:now\s+)?(?P<verb>dropped|reverted|removed)\s+(?:from|out\s+of)\s+(?P<where>(?:my|the)\s+"
    r"(?:[\w/.-]+\s+)?(?:queue|tree|branch|next)\b|[\w.+-]*/[\w./+-]+)",
    re.I | re.M,
)
_STABLE_SUBJECT_RE = re.compile(
    r'^Patch "(?P<title>.+)" has been added to the (?P<tree>[\w.]+-stable) tree$', re.I
)

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
    """The first "Applied/Queued/Pulled …" or "dropped from my tree" statement in a reply's
    own text, if any."""
    low = text.lower()
    taken_back = any(verb in low for verb in ("drop", "revert", "remov", "unqueue"))
    if taken_back and (dropped := find_drop_notice(text)) is not None:
        return dropped
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
        sentence = _NOT_TRYING_RE.sub(" ", _sentence(m.group(0)))
        where = _find_where(rest)
        if _TRIED_RE.search(sentence) or (where and _OWN_VERSION_RE.match(where)):
            continue  # applied to try it, or into the sender's own next version
        verb = m.group("verb").lower().split()[0]
        verb = {"picked": "applied", "pushed": "applied", "merged": "applied"}.get(verb, verb)
        return AppliedNotice(
            where=where,
            items=_find_ty_items(text[m.end() :]),
            counters=_find_counters(rest),
            excluded=_find_excluded(_sentence(m.group(0))),
            verb=verb,
            tentative=verb == "queued" or bool(_TENTATIVE_RE.search(_sentence(m.group(0), 2))),
            whole=bool(_WHOLE_RE.search(rest)),
        )
    return None


def find_drop_notice(text: str) -> AppliedNotice | None:
    """ "I've now dropped this series from my tree", "Both patches now dropped from my queue",
    "I've reverted it from kvmarm/next": an earlier apply taken back."""
    for pattern in (_DROP_RE, _DROPPED_PASSIVE_RE):
        for m in pattern.finditer(text):
            if not _starts_sentence(text, m.start()):
                continue
            what = m.groupdict().get("what") or ""
            if re.search(r"\b(?:series|patchset|v\d+)\b", what, re.I) and "my" not in m.group(
                "where"
            ):
                continue  # "drop this patch from the series": the author's own next version
            verb = m.group("verb").lower()
            verb = "reverted" if verb.startswith("revert") else "dropped"
            where = " ".join(m.group("where").split()).rstrip(_WHERE_JUNK)
            if re.match(r"the\s+(?:series|patchset|set|list|array|table|code)\b", where, re.I):
                continue
            counters = _find_counters(what)
            said = what or m.group(0)
            return AppliedNotice(
                where=where,
                counters=counters,
                verb=verb,
                whole=bool(re.search(r"\b(?:series|set|all|both|these|them)\b", said, re.I)),
            )
    return None


def find_stable_notice(subject: str) -> AppliedNotice | None:
    """The stable team's 'Patch "…" has been added to the 5.10-stable tree'."""
    m = _STABLE_SUBJECT_RE.match(subject.strip())
    if m is None:
        return None
    return AppliedNotice(
        where=m.group("tree"), items=((None, m.group("title"), None),), verb="stable"
    )


def _sentence(line: str, count: int = 1) -> str:
    """The first ``count`` sentences of a notice line."""
    parts = re.split(r"(?<=[.!?])\s", line)
    return " ".join(parts[:count])


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
    where = m.group("tree") or m.group("to") or m.group("for") or m.group("url") or ""
    where = where.strip().rstrip(_WHERE_JUNK)
    return where or None


def _find_counters(rest: str) -> tuple[int, ...]:
    m = _COUNTERS_RE.search(rest)
    if not m or m.start() > 16:
        return ()  # "Queued …, until I get a review of patch 4": not a list of what was taken
    return _numbers(m.group("list"))


def _find_excluded(sentence: str) -> tuple[int, ...]:
    m = _EXCLUDED_RE.search(sentence)
    return _numbers(m.group("list").replace("#", "")) if m else ()


def _numbers(listed: str) -> tuple[int, ...]:
    """ "1-3, 5 and 7" → (1, 2, 3, 5, 7)."""
    numbers: list[int] = []
    for part in re.split(r"\s*(?:,|and|&)\s*", listed):
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
