"""Answers as Block Kit messages: the shared layout, every mail text escaped.

Limits kept: ≤ 50 blocks per message, ≤ 3,000 characters per section text, ≤ 2,000 per
context element and per button value.  Links point only at URLs we built (lore).
"""

from __future__ import annotations

from bot.blockkit import MAX_BLOCKS, MAX_CONTEXT, MAX_SECTION, MAX_VALUE
from bot.commands.layout import Layout, Line, Section, Span, layout, usage_error
from bot.mrkdwn import cut_mrkdwn, escape_mrkdwn
from bot.slack.escape import link

SPAN_CHARS = 1500

SHARE_ACTION = "kvmarm_share"
POST_DIGEST_ACTION = "kvmarm_post_digest"


def answer_message(answer: object, *, shareable: bool = True) -> dict:
    """An ephemeral reply for an answer (with a "Share in channel" button when it helps)."""
    return layout_message(layout(answer), shareable=shareable)


def error_message(err) -> dict:
    """An ephemeral reply for a UsageError: what was wrong, then the usage."""
    return layout_message(usage_error(err), shareable=False)


def layout_message(lay: Layout, *, shareable: bool = True) -> dict:
    blocks = [_section(cut_mrkdwn(mrkdwn_line(lay.title), MAX_SECTION))]
    for section in lay.sections:
        blocks.extend(_section_blocks(section))
    actions = []
    if shareable and lay.share and not lay.error and len(lay.share) <= MAX_VALUE:
        actions.append(button("Share in channel", SHARE_ACTION, lay.share))
    return {
        "response_type": "ephemeral",
        "text": escape_mrkdwn(lay.fallback)[:MAX_CONTEXT],
        "blocks": fit_blocks(blocks, actions),
    }


def button(text: str, action_id: str, value: str, *, primary: bool = False) -> dict:
    element = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": False},
        "action_id": action_id,
        "value": value[:MAX_VALUE],
    }
    if primary:
        element["style"] = "primary"
    return element


def fit_blocks(blocks: list[dict], actions: list[dict]) -> list[dict]:
    """At most MAX_BLOCKS blocks, the action buttons kept last."""
    room = MAX_BLOCKS - (1 if actions else 0)
    if len(blocks) > room:
        note = _context(f"… {len(blocks) - room + 1} more parts left out (Slack's limit).")
        blocks = [*blocks[: room - 1], note]
    if actions:
        blocks = [*blocks, {"type": "actions", "elements": actions}]
    return blocks


def mrkdwn_line(line: Line) -> str:
    return "".join(_span(s) for s in line)


def _span(span: Span) -> str:
    if len(span.text) > SPAN_CHARS:  # a hostile or broken title: keep links whole
        span = Span(span.text[: SPAN_CHARS - 1] + "…", span.url, span.bold, span.code)
    if span.code:
        fence = "```" if "\n" in span.text else "`"
        return f"{fence}{escape_mrkdwn(span.text)}{fence}"
    text = link(span.url, span.text) if span.url else escape_mrkdwn(span.text)
    return f"*{text}*" if span.bold and text.strip() else text


def _section_blocks(section: Section) -> list[dict]:
    lines = [mrkdwn_line(line) for line in section.lines]
    if section.heading:
        lines.insert(0, f"*{escape_mrkdwn(section.heading)}*")
    limit = MAX_CONTEXT if section.small else MAX_SECTION
    make = _context if section.small else _section
    return [make(chunk) for chunk in _chunks(lines, limit)]


def _chunks(lines: list[str], limit: int) -> list[str]:
    """Join lines into texts of at most ``limit`` characters (a longer line is cut)."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = cut_mrkdwn(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
