"""Splitting a mail's text into the author's own words, the patch notes and the diff.

Quoted lines, attribution lines ("On Mon, … X wrote:"), signatures and mailing-list footers
are not the sender's words: summaries and search use ``own_text`` only.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ingest.b4rules import DIFF_RE

_FOOTER_RE = re.compile(
    r"\n*_{20,}\n[^\n]*mailing list\n[^\n]*@[^\n]*\n(?:https?://[^\n]*\n?)?[ \t\n]*\Z"
)
_SEPARATOR_RE = re.compile(r"(?m)^---[ \t]*$")
_DIFFSTAT_LINE_RE = re.compile(
    r"(?m)^[ \t]+\S.*\|[ \t]+(?:\d+ ?[+-]*|Bin\b.*)[ \t]*$\n?"
    r"|^[ \t]*\d+ files? changed(?:, .*)?$\n?"
    r"|^[ \t]*(?:create|delete|rename|copy) mode \d+ .*$\n?"
)
_ORIGINAL_MESSAGE_RE = re.compile(
    r"(?m)^(?:-{3,}\s*Original Message\s*-{3,}|_{20,}\s*\nFrom:|From: .*\nSent: ).*", re.I
)
# "On Mon, 9 Sep 2019, X wrote:", "X <x@y> writes:", "Quoting X (2019-09-09):" — a line
# ending in ":" (found fast) that says so and is followed by a quote.
_LINE_END_COLON_RE = re.compile(r":[ \t]*$", re.M)
_ATTRIBUTION_WORDS = ("wrote", "writes", "said", "schrieb", "a écrit", "escribió", "ha scritto")
_QUOTE_FOLLOWS_RE = re.compile(r"\n(?:[ \t]*\n)*[ \t]*>")
_QUOTE_RE = re.compile(r"(?m)^[ \t]*>.*(?:\n|\Z)")
_SNIP_RE = re.compile(r"(?m)^[ \t]*\[(?:\.\.\.|…|snip(?:ped)?[^\]]*)\][ \t]*$\n?", re.I)
_BLANKS_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


@dataclass(frozen=True, slots=True)
class BodyParts:
    message: str  # text before the "---" separator (patches) or the whole text
    notes: str  # between "---" and the diff, diffstat removed (changelogs live here)
    diff: str
    has_diff: bool


def split_body(text: str) -> BodyParts:
    m = DIFF_RE.search(text)
    if m is None:
        return BodyParts(message=text, notes="", diff="", has_diff=False)
    before, diff = text[: m.start()], _strip_signature(text[m.start() :], max_lines=6)
    sep = _SEPARATOR_RE.search(before)
    if sep is None:
        return BodyParts(message=before.strip("\n"), notes="", diff=diff, has_diff=True)
    notes = _DIFFSTAT_LINE_RE.sub("", before[sep.end() :]).strip("\n")
    return BodyParts(
        message=before[: sep.start()].strip("\n"), notes=notes, diff=diff, has_diff=True
    )


def own_text(text: str) -> str:
    """The sender's own words: no quotes, attributions, snips, signature or full-quote tail."""
    text = _strip_signature(text, max_lines=25)
    low = text.lower()
    if ("original message" in low or "\nsent: " in low or "_" * 20 in text) and (
        m := _ORIGINAL_MESSAGE_RE.search(text)
    ):
        text = text[: m.start()]
    if ">" in text:
        text = _drop_attributions(text)
        text = _QUOTE_RE.sub("", text)
    if "[" in text:
        text = _SNIP_RE.sub("", text)
    return _BLANKS_RE.sub("\n\n", text).strip()


def _drop_attributions(text: str) -> str:
    keep: list[str] = []
    done = 0
    for m in _LINE_END_COLON_RE.finditer(text):
        if not _QUOTE_FOLLOWS_RE.match(text, m.end()):
            continue
        start = text.rfind("\n", 0, m.start()) + 1
        line = text[start : m.start()].lower()
        if not (line.startswith("quoting ") or any(w in line for w in _ATTRIBUTION_WORDS)):
            continue
        if start > done:
            previous = text.rfind("\n", 0, start - 1) + 1
            if (
                previous >= done
                and text.startswith("On ", previous)
                and not text.startswith("On ", start)
            ):
                start = previous  # "On Mon, 9 Sep 2019 at 13:13, Long Name\n<addr> wrote:"
        if start < done:
            continue
        keep.append(text[done:start])
        done = m.end() + 1
    keep.append(text[done:])
    return "".join(keep)


def is_list_footer(text: str) -> bool:
    """A MIME part that holds nothing but the mailman footer."""
    return bool(_FOOTER_RE.fullmatch("\n" + text.strip() + "\n"))


def strip_list_footer(text: str) -> str:
    """Remove mailman footers at the end (a mail relayed through two lists has two)."""
    while True:
        tail = max(0, len(text) - 600)  # a footer is short and last: only look there
        if "mailing list" not in text[tail:]:
            return text
        stripped = text[:tail] + _FOOTER_RE.sub("\n", text[tail:])
        if stripped == text:
            return text
        text = stripped


def html_to_text(markup: str) -> str:
    """Rough text of an HTML-only mail (rare on kernel lists, but they happen)."""
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _strip_signature(text: str, max_lines: int) -> str:
    """Cut at the last "-- " line when what follows is short enough to be a signature."""
    start = max(text.rfind("\n-- \n"), text.rfind("\n--\n"))
    if start < 0:
        return text
    if text.count("\n", start + 3) <= max_lines + 1:
        return text[:start].rstrip("\n") + "\n"
    return text
