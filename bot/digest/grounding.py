"""Is a summary grounded in its thread?  People it names must be participants; versions it
names must exist; messages it cites must be in the prompt.

Claims are checked next to this (bot.digest.claims, called by summarise.py): who reviewed,
acked, tested, applied or NAKed must agree with the entry's trailers and status.

Names are found three ways, so a cooperative model, a confused one and a mail that tries to
steer the model are all caught:
- addresses anywhere in the text;
- full names of anyone who ever sent to the list (the directory), by capitalised n-grams;
- "<Firstname Lastname> said/suggested/…" (and the Chinese equivalents) for names we have
  never seen;
- "<Firstname> said/…" when Firstname is the first name of a known sender and of nobody
  in the thread ("Paolo suggested …" in a thread Paolo never wrote in);
plus the ``people`` list the model returns.  A first name anywhere else ("… as Marc
wanted") is not checked: it cannot be told apart from a word.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.digest.summary import Summary, SummaryRequest

_EMAIL_RE = re.compile(r"[A-Za-z0-9.+_-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_LETTER = "A-Za-z\u00c0-\u024f'’-"
_CAPS_RE = re.compile(rf"[A-Z\u00c0-\u00de][{_LETTER}]*(?:[ \t]+[A-Z\u00c0-\u00de][{_LETTER}]*)+")
_WORD = r"[A-Z][a-z'’]+(?:-[A-Z]?[a-z'’]+)*"  # Jean-Philippe, O'Neil
_POSSESSIVE_RE = re.compile(r"['’]s$")
_VERBS_EN = (
    "said|says|asked|asks|suggested|suggests|noted|notes|pointed out|points out|argued|"
    "argues|replied|replies|proposed|proposes|objected|objects|agreed|agrees|acked|reviewed|"
    "tested|commented|explained|questioned|requested|wondered|confirmed|responded|posted|"
    "sent|applied|raised|wrote|thinks|thought|believes|prefers|preferred|recommended|"
    "reported|promised|plans|will|merged|queued|pulled|nacked|naked|took|picked up"
)
_VERBS_ZH = "提出|表示|指出|建议|认为|回复|询问|质疑|同意|确认|解释|回应|发布|提交|审阅|评论|说|问"
_ATTRIBUTION_RE = re.compile(
    rf"(?<![\w.'’-])({_WORD}(?:[ \t]+{_WORD}){{1,2}})"
    rf"(?:[ \t]+(?:{_VERBS_EN})\b|[ \t]*(?:{_VERBS_ZH}))"
)
_FIRST_NAME_RE = re.compile(
    rf"(?<![\w.'’-])({_WORD})(?:['’]s)?(?:[ \t]+(?:{_VERBS_EN})\b|[ \t]*(?:{_VERBS_ZH}))"
)
_STOP = {
    "the", "this", "that", "these", "those", "patch", "patches", "series", "commit", "linux",
    "kernel", "version", "arm", "intel", "google", "red", "hat", "nvidia", "qemu", "kvm",
    "mail", "mails", "thread", "cover", "letter", "summary", "background", "it", "he", "she",
    "they", "we", "one", "another", "everyone", "nobody", "someone", "reviewers", "maintainers",
    "maintainer", "reviewer", "author", "applied", "reviewed", "tested", "acked",
}  # fmt: skip
_VERSION_RES = (
    re.compile(r"(?<![A-Za-z0-9.])[vV](\d{1,3})(?![A-Za-z0-9]|\.\d)"),
    re.compile(r"\bversion[ \t]+(\d{1,3})\b", re.I),
    re.compile(r"第[ \t]*(\d{1,3})[ \t]*版"),
)


def norm_name(name: str) -> str:
    return " ".join(name.replace("’", "'").casefold().split())


_norm = norm_name


@dataclass(frozen=True)
class Directory:
    """Everyone who ever sent to the list: normalised full name → their addresses."""

    names: dict[str, frozenset[str]]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Directory:
        names: dict[str, set[str]] = defaultdict(set)
        for name, email in pairs:
            key = _norm(name)
            words = key.split()
            if 2 <= len(words) <= 4 and "@" not in key and len(key) >= 5:
                names[key].add(email.lower())
        return cls({k: frozenset(v) for k, v in names.items()})

    @cached_property
    def first_names(self) -> frozenset[str]:
        return frozenset(k.split()[0] for k in self.names)

    def knows_first_name(self, word: str) -> bool:
        """Is ``word`` the first name of someone who sent to the list?"""
        return norm_name(word) in self.first_names

    def known_names_in(self, text: str) -> set[str]:
        """Full names of known senders written in ``text`` (capitalised n-grams)."""
        found: set[str] = set()
        for m in _CAPS_RE.finditer(text):
            words = [_POSSESSIVE_RE.sub("", w) for w in m.group(0).split()]
            for size in (4, 3, 2):
                for i in range(len(words) - size + 1):
                    key = _norm(" ".join(words[i : i + size]))
                    if key in self.names:
                        found.add(key)
        return found


@dataclass(frozen=True)
class Allowed:
    """The people one entry's summary may name."""

    names: frozenset[str]  # normalised
    emails: frozenset[str]
    tokens: tuple[frozenset[str], ...]  # word sets of each allowed name

    @classmethod
    def of(cls, people: Iterable) -> Allowed:
        people = list(people)
        names = frozenset(_norm(p.name) for p in people if p.name)
        return cls(
            names=names,
            emails=frozenset(p.email.lower() for p in people),
            tokens=tuple(frozenset(n.split()) for n in names),
        )

    def admits(self, name: str, directory: Directory) -> bool:
        key = _norm(name)
        if "@" in key:
            return key in self.emails
        if key in self.names or directory.names.get(key, frozenset()) & self.emails:
            return True
        words = set(key.split())
        return bool(words) and any(words <= t for t in self.tokens)


def outsiders(text: str, allowed: Allowed, directory: Directory) -> list[str]:
    """People named in ``text`` who are not allowed (sorted, deduplicated)."""
    found: set[str] = set()
    for email in _EMAIL_RE.findall(text):
        if email.lower() not in allowed.emails:
            found.add(email.lower())
    for key in directory.known_names_in(text):
        if not allowed.admits(key, directory):
            found.add(key.title())
    for m in _FIRST_NAME_RE.finditer(text):  # "Paolo said …": a known first name alone
        word = m.group(1)
        if word.casefold() in _STOP or not directory.knows_first_name(word):
            continue
        if not allowed.admits(word, directory):
            found.add(word)
    for m in _ATTRIBUTION_RE.finditer(text):
        name = m.group(1)
        if name.split()[0].casefold() in _STOP:
            continue
        if not allowed.admits(name, directory):
            found.add(name)
    return sorted(found)


def versions_named(text: str) -> set[int]:
    return {int(v) for pattern in _VERSION_RES for v in pattern.findall(text)}


def check_summary(summary: Summary, request: SummaryRequest) -> list[str]:
    """Why a summary is not grounded (empty list: it is)."""
    directory = request.directory
    allowed = Allowed.of(request.people)
    text = "\n".join(t for t in (summary.background or "", summary.this_week) if t)
    problems = []
    if not summary.this_week.strip():
        problems.append("empty summary")
    named = set(outsiders(text, allowed, directory))
    named |= {p for p in summary.people if p.strip() and not allowed.admits(p, directory)}
    if named:
        problems.append("names people who are not in the thread: " + ", ".join(sorted(named)))
    bad_versions = sorted(versions_named(text) - set(request.versions))
    if bad_versions:
        known = ", ".join(f"v{v}" for v in request.versions) or "none"
        wrong = ", ".join(f"v{v}" for v in bad_versions)
        problems.append(f"names versions that do not exist: {wrong} (known: {known})")
    labels = {m.label for m in (*request.earlier, *request.mails)}
    unknown = sorted(set(summary.citations) - labels)
    if unknown:
        problems.append("cites mails that are not in the thread: " + ", ".join(map(str, unknown)))
    return problems
