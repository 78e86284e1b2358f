"""Subscription filters: what a channel wants to hear about.  Pure.

    parse_filter('author:maz@kernel.org path:arch/arm64/kvm/vgic/* -RESEND')

Words match the series' titles (all of them must appear); ``author:`` a name or address of
the series' author or a version's sender; ``path:`` a glob over the files its patches touch
(``*`` crosses ``/``; a glob-free path matches that file or anything below it);
``series:`` a lore link or Message-ID of any of its mails; ``events:`` the kinds wanted
(default: every kind but ``review``); ``-author:`` and ``-word`` exclude; ``all`` matches
every series.  Several criteria of one kind: any of them.  ``filter.text`` is the
normalised form stored and shown (and what `unsubscribe` compares).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field

from storage.live import EVENT_KINDS
from storage.search import msgid_in

DEFAULT_KINDS = frozenset(k for k in EVENT_KINDS if k != "review")
_KIND_ALIASES = {
    "reviews": "review",
    "new": "new_series",
    "series": "new_series",
    "version": "new_version",
    "versions": "new_version",
    "changes": "changes_requested",
    "changes-requested": "changes_requested",
    "reports": "report",
    "drops": "dropped",
}
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})
_WORD_RE = re.compile(r"[\w.+-]+", re.UNICODE)
MAX_FILTER_CHARS = 300


class FilterError(ValueError):
    """The filter text cannot be understood; the message says which part."""


@dataclass(frozen=True, slots=True)
class Filter:
    all: bool = False
    words: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    series: tuple[str, ...] = ()  # Message-IDs
    kinds: frozenset[str] = DEFAULT_KINDS
    not_authors: tuple[str, ...] = ()
    not_words: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        parts: list[str] = ["all"] if self.all else []
        parts += [_quoted(w) for w in self.words]
        parts += [f"author:{_quoted(a)}" for a in self.authors]
        parts += [f"path:{_quoted(p)}" for p in self.paths]
        parts += [f"series:{_quoted(s)}" for s in self.series]
        if self.kinds != DEFAULT_KINDS:
            parts.append("events:" + ",".join(k for k in EVENT_KINDS if k in self.kinds))
        parts += [f"-author:{_quoted(a)}" for a in self.not_authors]
        parts += [f"-{_quoted(w)}" for w in self.not_words]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class SeriesView:
    """What filters look at in one series."""

    titles: tuple[str, ...]
    people: tuple[tuple[str, str], ...]  # (name, address) of the author and every sender
    paths: frozenset[str] = field(default_factory=frozenset)
    msgids: frozenset[str] = field(default_factory=frozenset)


def _quoted(value: str) -> str:
    return shlex.quote(value) if any(c.isspace() or c in "'\"" for c in value) else value


def parse_filter(text: str) -> Filter:
    """Filter text → Filter, or FilterError saying what is wrong."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"a filter is at most {MAX_FILTER_CHARS} characters")
    try:
        tokens = shlex.split(text.translate(_QUOTES))
    except ValueError as exc:
        raise FilterError(f"cannot read the filter: {exc}") from exc
    found: dict[str, list[str]] = {k: [] for k in ("words", "authors", "paths", "series")}
    found |= {"not_authors": [], "not_words": []}
    kinds: set[str] | None = None
    everything = False
    for token in tokens:
        key, sep, value = token.partition(":")
        key = key.casefold()
        if token.casefold() == "all":
            everything = True
        elif sep and key in ("author", "-author", "path", "series", "events"):
            if not value.strip():
                raise FilterError(f"`{key}:` needs a value")
            if key == "events":
                kinds = (kinds or set()) | _kinds(value)
            elif key == "series":
                msgid = msgid_in(value)
                if msgid is None:
                    raise FilterError(f"`series:` wants a lore link or a Message-ID, not {value}")
                found["series"].append(msgid)
            else:
                name = {"author": "authors", "-author": "not_authors", "path": "paths"}[key]
                found[name].append(value.strip())
        elif token.startswith("-") and len(token) > 1:
            found["not_words"].append(token[1:])
        else:
            found["words"].append(token)
    result = Filter(
        all=everything,
        kinds=frozenset(kinds) if kinds is not None else DEFAULT_KINDS,
        **{k: tuple(dict.fromkeys(v)) for k, v in found.items()},
    )
    if not (result.all or result.words or result.authors or result.paths or result.series):
        raise FilterError(
            "say what to follow: words, author:, path:, series: — or `all` for every series"
        )
    return result


def _kinds(value: str) -> set[str]:
    kinds: set[str] = set()
    for word in value.replace("+", ",").split(","):
        word = word.strip().casefold()
        if not word:
            continue
        if word == "all":
            kinds |= set(EVENT_KINDS)
            continue
        kind = _KIND_ALIASES.get(word, word.replace("-", "_"))
        if kind not in EVENT_KINDS:
            raise FilterError(f"unknown event kind `{word}`; kinds: {', '.join(EVENT_KINDS)}")
        kinds.add(kind)
    return kinds


def matches(f: Filter, view: SeriesView, kind: str) -> bool:
    """Does an event of ``kind`` about the series in ``view`` pass the filter?"""
    if kind not in f.kinds:
        return False
    title_words = {w.casefold() for t in view.titles for w in _WORD_RE.findall(t)}
    if any(_person_matches(a, view.people) for a in f.not_authors):
        return False
    if any(w.casefold() in title_words for w in f.not_words):
        return False
    if f.all:
        return True
    if f.words and not all(w.casefold() in title_words for w in f.words):
        return False
    if f.authors and not any(_person_matches(a, view.people) for a in f.authors):
        return False
    if f.paths and not any(_path_matches(p, view.paths) for p in f.paths):
        return False
    return not (f.series and not any(m in view.msgids for m in f.series))


def _person_matches(wanted: str, people: tuple[tuple[str, str], ...]) -> bool:
    wanted = wanted.strip("<>").casefold()
    if "@" in wanted:
        return any(email.casefold() == wanted for _name, email in people)
    return any(wanted in name.casefold() for name, _email in people)


def _path_matches(pattern: str, paths: frozenset[str]) -> bool:
    pattern = pattern.lstrip("/")
    if not any(c in pattern for c in "*?["):
        prefix = pattern.rstrip("/") + "/"
        return any(p == pattern or p.startswith(prefix) for p in paths)
    return any(fnmatch.fnmatchcase(p, pattern) for p in paths)
