"""Answers as terminal text (`kvmarm ask`): the shared layout, links as bare URLs."""

from __future__ import annotations

from bot.commands.layout import Layout, Line, layout


def render_text(answer: object) -> str:
    return render_layout(layout(answer))


def render_layout(lay: Layout) -> str:
    out = [_line(lay.title)]
    for section in lay.sections:
        out.append("")
        indent = ""
        if section.heading:
            out.append(section.heading + ":")
            indent = "  "
        for line in section.lines:
            text = _line(line)
            out.extend(indent + part for part in text.split("\n"))
    return "\n".join(out).rstrip() + "\n"


def _line(line: Line) -> str:
    parts = []
    for span in line:
        text = span.text
        if span.url and span.url != text:
            text = f"{text} <{span.url}>"
        parts.append(text)
    return "".join(parts)
