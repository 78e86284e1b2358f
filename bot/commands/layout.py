"""Answers laid out as sections of lines of spans, the one layout both renderers share.

``layout(answer)`` decides what is said and in which order; ``render_text`` (terminal) and
``bot.slack.blocks`` (Block Kit, escaped) only decide how a span looks.  Span text is raw
mail text: renderers escape it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from bot.commands import results as a
from bot.commands.grammar import USAGE, UsageError

MAX_PARTICIPANTS = 8
MAX_OTHERS = 5


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    url: str | None = None
    bold: bool = False
    code: bool = False


Line = tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Section:
    heading: str | None
    lines: tuple[Line, ...]
    small: bool = False  # secondary facts (Slack: a context block)


@dataclass(frozen=True, slots=True)
class Layout:
    title: Line
    sections: tuple[Section, ...]
    fallback: str  # one plain line for notifications
    share: str = ""  # the command that re-creates this answer ("" = nothing to share)
    error: bool = False


def _s(text: str, url: str | None = None, *, bold: bool = False, code: bool = False) -> Span:
    return Span(text, url, bold, code)


def day(iso: str | None) -> str:
    return iso[:10] if iso else "undated"


def minute(iso: str | None) -> str:
    return f"{iso[:10]} {iso[11:16]} UTC" if iso else "undated"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---- per answer -------------------------------------------------------------------------


@singledispatch
def layout(answer: object) -> Layout:
    raise TypeError(f"no layout for {type(answer).__name__}")


@layout.register
def _layout_series_thread(answer: a.SeriesThread) -> Layout:
    latest = answer.latest[-1]
    head = " · ".join(
        (
            f"by {answer.author.label} <{answer.author.email}>",
            plural(len(answer.versions), "version"),
            plural(answer.messages, "mail"),
            plural(len(answer.participants), "participant"),
            f"first {day(answer.first_date)}",
            f"last activity {minute(answer.last_date)}",
        )
    )
    sections = [
        *_note(answer.note),
        Section(None, ((_s(head),),), small=True),
        Section(
            "Status", tuple(_status_lines(v) for v in answer.latest) + _evidence(answer.latest)
        ),
        Section("Versions", (_version_links(answer.versions),)),
        Section(f"Reviews on {latest.label}", _tally_lines(answer.reviews)),
        Section("Participants", (_people(answer.participants),)),
    ]
    sections += _closing(answer.summary, latest.link, ("apply: ", answer.b4), answer.others)
    return Layout(
        (_s(answer.title, latest.link, bold=True),),
        tuple(sections),
        f"{answer.title} — {latest.label} {latest.status}",
        answer.share,
    )


def _closing(summary, link: str, command: tuple[str, str], others) -> list[Section]:
    """What ends a thread answer: the summary, the lore link, the b4 hand-off, close matches."""
    sections = []
    if summary:
        sections.append(Section(f"Summary ({summary.source})", ((_s(summary.text),),)))
    label, text = command
    lines = ((_s("lore: "), _s(link, link)), (_s(label), _s(text, code=True)))
    return [*sections, Section(None, lines), *_others(others)]


@layout.register
def _layout_plain_thread(answer: a.PlainThread) -> Layout:
    who = (
        f"by {answer.author.label} <{answer.author.email}>" if answer.author else "root not stored"
    )
    head = (
        f"{who} · {plural(answer.messages, 'mail')} · "
        f"{plural(len(answer.participants), 'participant')} · "
        f"first {minute(answer.first_date)} · last activity {minute(answer.last_date)}"
    )
    sections = [*_note(answer.note), Section(None, ((_s(head),),), small=True)]
    if answer.series:
        sections.append(
            Section("Series in this thread", tuple((_s(title),) for _, title in answer.series))
        )
    sections.append(Section("Participants", (_people(answer.participants),)))
    sections += _closing(answer.summary, answer.link, ("mbox: ", answer.b4), answer.others)
    return Layout(
        (_s(answer.title, answer.link, bold=True),),
        tuple(sections),
        f"{answer.title} — {plural(answer.messages, 'mail')}",
        answer.share,
    )


@layout.register
def _layout_series_history(answer: a.SeriesHistory) -> Layout:
    lines: list[Line] = []
    for step in answer.steps:
        for v in step.versions:
            lines.append(
                (
                    _s(v.label, v.link, bold=True),
                    _s(
                        f"  {day(v.date)} · {v.received}/{v.total} patches · {v.status}"
                        + (
                            f" · {plural(step.review_trailers, 'review trailer')}"
                            if v is step.versions[-1] and step.review_trailers
                            else ""
                        )
                        + (f" · {v.title}" if len(step.versions) > 1 else "")
                    ),
                )
            )
        lines.extend(_change_lines(step.change))
    chained = ", ".join(answer.linked_by) or "a single version"
    sections = [
        *_note(answer.note),
        Section(
            None,
            (
                (
                    _s(
                        f"by {answer.author.label} <{answer.author.email}> · versions chained by "
                        f"{chained}"
                    ),
                ),
            ),
            small=True,
        ),
        Section("Version history", tuple(lines)),
    ]
    sections += _others(answer.others)
    last = answer.steps[-1].versions[-1]
    return Layout(
        (_s(answer.title, last.link, bold=True),),
        tuple(sections),
        f"{answer.title} — {plural(len(answer.steps), 'version')}",
        answer.share,
    )


@layout.register
def _layout_who_reviewed(answer: a.WhoReviewed) -> Layout:
    sections: list[Section] = [*_note(answer.note)]
    for posting in answer.latest:
        v = posting.version
        lines: list[Line] = []
        for p in posting.patches:
            given = [_trailer_span(t) for t in p.trailers]
            spans: list[Span] = [_s(f"{p.n}/{v.total} "), _s(p.title, p.link)]
            if given:
                spans.append(_s(": "))
                for i, span in enumerate(given):
                    spans.extend((_s("; ") if i else _s(""), *span))
            else:
                spans.append(_s(": no review trailer yet"))
            lines.append(tuple(spans))
        heading = f"{v.label} ({day(v.date)}, {v.status})"
        if len(answer.latest) > 1:
            heading += f": {v.title}"
        sections.append(Section(heading, tuple(lines) or ((_s("no patches received"),),)))
    if answer.unresolved:
        lines = [
            (
                _s(f"{u.kind} {u.name or u.email} — for '{u.scope}', not resolved ("),
                _s("mail", u.link),
                _s(")"),
            )
            for u in answer.unresolved
        ]
        sections.append(Section("Given for a part we could not map (not counted)", tuple(lines)))
    if answer.other_address:
        lines = [
            (
                _s(f"{u.name or u.sender}: {u.kind} given from another address ({u.email}, "),
                _s("mail", u.link),
                _s(f"; sent from {u.sender}), not counted"),
            )
            for u in answer.other_address
        ]
        sections.append(Section("Trailers from another address", tuple(lines)))
    if answer.without_trailer:
        people = ", ".join(f"{p.name or p.email} ({p.messages})" for p in answer.without_trailer)
        sections.append(Section("Replied without a trailer", ((_s(people),),)))
    if answer.earlier:
        lines = [
            (
                _s(e.version.label, e.version.link, bold=True),
                _s(": " + "; ".join(f"{k}: {', '.join(names)}" for k, names in e.by_kind)),
            )
            for e in answer.earlier
        ]
        sections.append(Section("Earlier versions", tuple(lines)))
    notes = [
        "From the trailer ledger: inline = in the posted patch, reply = given on the list, "
        "cover = given on the cover letter (applies to every patch), carried = given on an "
        "unchanged patch of an earlier version."
    ]
    if answer.mismatched:
        notes.append(
            f"{plural(answer.mismatched, 'follow-up trailer')} naming someone other than "
            "its sender not counted."
        )
    sections.append(Section(None, tuple((_s(n),) for n in notes), small=True))
    sections += _others(answer.others)
    latest = answer.latest[-1].version
    return Layout(
        (_s(f"Who reviewed: {answer.title}", latest.link, bold=True),),
        tuple(sections),
        f"Who reviewed {answer.title} ({latest.label})",
        answer.share,
    )


@layout.register
def _layout_reviews(answer: a.Reviews) -> Layout:
    lines: list[Line] = []
    for item in answer.items:
        what = "every patch (on the cover letter)" if item.on_cover else _patch_list(item.patches)
        lines.append(
            (
                _s(f"{day(item.date)} {item.kind} "),
                _s(f"{item.series_title} v{item.version}", item.link, bold=True),
                _s(f", {what}"),
            )
        )
    head = (
        f"{', '.join(answer.emails)} · {plural(answer.given, 'review trailer')} given on the list"
        f", {answer.collected} more collected by authors into their postings"
    )
    sections = [
        Section(None, ((_s(head),),), small=True),
        Section("Given on the list, newest first", tuple(lines) or ((_s("none"),),)),
    ]
    if answer.others:
        names = ", ".join(f"{p.name} <{p.email}>" for p in answer.others)
        sections.append(Section("Also matching", ((_s(names),),), small=True))
    return Layout(
        (_s(f"Reviews by {answer.person.label}", bold=True),),
        tuple(sections),
        f"Reviews by {answer.person.label}",
        answer.share,
    )


def _patch_list(patches: tuple[int, ...]) -> str:
    return ("patch " if len(patches) == 1 else "patches ") + ", ".join(map(str, patches))


@layout.register
def _layout_status(answer: a.Status) -> Layout:
    f = answer.facts
    lines = [
        (_s(f"{f['messages']} mails from {day(f['first_date'])} to {day(f['last_date'])}"),),
        (_s(f"{f['threads']} threads, {f['series']} series ({f['versions']} versions)"),),
        (_s(f"{f['quarantined']} mails quarantined (unparseable)"),),
        (_s(f"last sync: {_describe(f.get('last_sync'))}"),),
        (_s(f"last ingest: {_describe(f.get('last_ingest'))}"),),
    ]
    return Layout(
        (_s("kvmarm-bot status", bold=True),),
        (Section(None, tuple(lines)),),
        f"{f['messages']} mails, last {day(f['last_date'])}",
        answer.share,
    )


@layout.register
def _layout_help(answer: a.Help) -> Layout:
    return Layout(
        (_s("kvmarm-bot", bold=True),),
        (Section(None, ((_s(answer.usage, code=True),),)),),
        "kvmarm usage",
    )


@layout.register
def _layout_summary_note(answer: a.SummaryNote) -> Layout:
    return Layout(
        (_s("Summary: "), _s(answer.title, answer.link, bold=True)),
        (
            Section(None, ((_s(answer.summary.text),),)),
            Section(None, ((_s(answer.summary.source),),), small=True),
        ),
        f"Summary of {answer.title}",
    )


@layout.register
def _layout_no_match(answer: a.NoMatch) -> Layout:
    what = {"reviewer": "No reviewer matches"}.get(answer.what, f"No {answer.what} matches")
    sections = [Section(None, ((_s(f"{what} “{answer.command.query}”."),),))]
    if answer.suggestions:
        sections.append(Section("Close titles", tuple((_s(t),) for t in answer.suggestions)))
    sections.append(Section(None, ((_s(USAGE, code=True),),), small=True))
    return Layout(
        (_s(f"Nothing found for `{answer.command.text}`", bold=True),),
        tuple(sections),
        f"{what} {answer.command.query}",
        error=True,
    )


def usage_error(err: UsageError) -> Layout:
    return Layout(
        (_s(str(err), bold=True),),
        (Section(None, ((_s(err.usage, code=True),),)),),
        str(err),
        error=True,
    )


# ---- pieces -----------------------------------------------------------------------------


def _status_lines(v: a.VersionInfo) -> Line:
    return (_s(v.label, v.link, bold=True), _s(f" ({day(v.date)}): {v.status}"))


def _evidence(versions: tuple[a.VersionInfo, ...]) -> tuple[Line, ...]:
    lines = []
    for v in versions:
        for e in v.evidence:
            lines.append((_s("  • "), _s(e.text, e.link)))
    return tuple(lines)


def _version_links(versions: tuple[a.VersionInfo, ...]) -> Line:
    spans: list[Span] = []
    for i, v in enumerate(versions):
        if i:
            spans.append(_s(" · "))
        spans.append(_s(v.label, v.link))
        spans.append(_s(f" {day(v.date)} ({v.received}/{v.total}, {v.status})"))
    return tuple(spans)


def _tally_lines(tallies: tuple[a.ReviewTally, ...]) -> tuple[Line, ...]:
    if not tallies:
        return ((_s("no Reviewed-by, Acked-by or Tested-by yet"),),)
    return tuple(
        (
            _s(f"{t.kind}: ", bold=True),
            _s(f"{', '.join(t.people)} ({t.patches}/{t.total} patches)"),
        )
        for t in tallies
    )


def _people(people: tuple[a.Participant, ...]) -> Line:
    shown = ", ".join(f"{p.name or p.email} ({p.messages})" for p in people[:MAX_PARTICIPANTS])
    more = len(people) - MAX_PARTICIPANTS
    return (_s(shown + (f" and {more} more" if more > 0 else "") or "none"),)


def _trailer_span(t: a.TrailerInfo) -> tuple[Span, ...]:
    source = t.source + (f" from v{t.from_version}" if t.from_version else "")
    scope = f" — for '{t.scope}'" if t.scope else ""
    return (_s(f"{t.kind} {t.name or t.email}{scope} ("), _s(source, t.link), _s(")"))


def _change_lines(change) -> list[Line]:
    if change is None:
        return []
    if change.empty:
        return [(_s(f"    no patch changed ({change.unchanged} identical)"),)]
    lines: list[Line] = []
    for label, titles in (
        ("added", change.added),
        ("dropped", change.dropped),
        ("changed", change.changed),
    ):
        for title in titles:
            lines.append((_s(f"    {label}: {title}"),))
    for old, new in change.retitled:
        lines.append((_s(f"    retitled: {old} → {new}"),))
    if change.unchanged:
        lines.append((_s(f"    {change.unchanged} unchanged"),))
    return lines


def _note(note: str | None) -> list[Section]:
    """A weak match says so first ("FEAT_X appears only in the text of one mail of …")."""
    return [Section(None, ((_s(f"Note: {note}."),),), small=True)] if note else []


def _others(others: tuple) -> list[Section]:
    if not others:
        return []
    lines = tuple(
        (_s(f"{t.title} ({t.kind}, last {day(t.last_date)})"),) for t in others[:MAX_OTHERS]
    )
    return [Section("Other close matches", lines, small=True)]


def _describe(state) -> str:
    if not state:
        return "never"
    if isinstance(state, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(state.items()))
    return str(state)
