"""The digest model as Slack Block Kit: one parent message (period, totals, top items) and
thread replies per category, each series/thread a few blocks.

Limits hold by construction (and tests assert them): ≤ 50 blocks per message, section text
≤ 3000 characters, header ≤ 150, ≤ 10 fields of ≤ 2000.  Every piece of mail text goes
through ``escape_mrkdwn`` so ``<!channel>``, ``<!here>``, ``<@U…>`` and ``<#C…>`` written in a
mail show literally and never notify anyone.
"""

from __future__ import annotations

from bot.blockkit import MAX_BLOCKS, MAX_FIELD, MAX_FIELDS, MAX_HEADER, MAX_SECTION
from bot.digest.entries import SECTIONS
from bot.digest.extractive import ranges
from bot.digest.labels import (
    labels,
    period_text,
    status_line,
    summaries_text,
    utc_minute,
    utc_short,
)
from bot.mrkdwn import cut_mrkdwn, escape_mrkdwn

MAX_TEXT = 3000  # the notification fallback ``text`` we send (Slack allows more)
TOP_ITEMS = 5
MAILS_SHOWN = 8
BLOCKS_PER_ENTRY = 5


def _link(url: str, label: str) -> str:
    """A link we made; ``label`` must already be escaped, ``url`` is percent-encoded."""
    return f"<{url}|{label.replace('|', '¦')}>"


def render_slack(model: dict) -> list[dict]:
    """``[parent, reply, reply, …]``: each ``{"text": fallback, "blocks": [...]}``."""
    t = labels(model.get("lang", "en"))
    messages = [_parent(model, t)]
    for section in SECTIONS:
        entries = [e for e in model["entries"] if e["section"] == section]
        if entries:
            messages += _section_messages(section, entries, t)
    if model["late_mails"]:
        messages.append(_late_message(model["late_mails"], t))
    return messages


# ---- parent ---------------------------------------------------------------------------------


def _parent(model: dict, t: dict) -> dict:
    period, n = model["period"], model["totals"]
    name = period.get("iso_week") or period["first_day"] + " – " + period["last_day"]
    title = f"{t['title'] if period.get('iso_week') else t['title_range']} · {name}"
    series = t["series_detail"].format(
        n=n["series"], new=n["new_series"], versions=n["new_versions"]
    )
    mails = str(n["mails"]) + (f" ({t['bots'].format(n=n['bot_mails'])})" if n["bot_mails"] else "")
    fields = [
        f"*{t['mails']}*\n{mails}",
        f"*{t['threads']}*\n{n['threads']}",
        f"*{t['series']}*\n{series}",
        f"*{t['participants']}* ({t['by_address']})\n{n['participants']}",
    ]
    categories = " · ".join(
        f"{name} {c['entries']} ({c['mails']})"
        for name, c in n["categories"].items()
        if c["entries"]
    )
    if categories:
        fields.append(f"*{t['categories']}*\n{categories}")
    if n["late_mails"]:
        fields.append(f"*{t['late']}*\n{n['late_mails']}")
    blocks = [
        _header(title),
        _section(
            f"*{t['period']}:* {period_text(period)}\n"
            f"*{t['generated']}:* {utc_minute(model['generated_at'])} · "
            f"*{t['summaries']}:* {escape_mrkdwn(summaries_text(model, t))}"
        ),
        {
            "type": "section",
            "fields": [_mrkdwn(f[:MAX_FIELD]) for f in fields[:MAX_FIELDS]],
        },
    ]
    if model["entries"]:
        blocks += [{"type": "divider"}, _section(_top_items(model["entries"], t))]
        blocks.append(_context(t["in_thread"]))
    else:
        blocks.append(_section(t["empty"]))
    text = (
        f"{title}: {n['mails']} {t['mails'].lower()}, {n['threads']} threads, "
        f"{n['series']} series, {n['participants']} {t['participants'].lower()}"
    )
    return {"text": text[:MAX_TEXT], "blocks": blocks}


def _top_items(entries: list[dict], t: dict) -> str:
    lines = [f"*{t['top_items']}*"]
    for e in entries[:TOP_ITEMS]:
        lines.append(f"{e['rank']}. {_link(e['link'], escape_mrkdwn(e['title']))} — {_brief(e, t)}")
    return _fit(lines)


def _brief(e: dict, t: dict) -> str:
    bits = [t["mails_detail"].format(week=e["mails_this_week"], total=e["mails_total"])]
    if e["version"] and e["type"] != "PULL":
        bits.insert(0, f"v{e['version']['number']}")
    if e["status"]:
        bits.append(t["statuses"].get(e["status"]["state"], e["status"]["state"]))
    return " · ".join(bits)


# ---- replies: one or more per category --------------------------------------------------------


def _section_messages(section: str, entries: list[dict], t: dict) -> list[dict]:
    chunks: list[list[dict]] = [[]]
    for e in entries:
        blocks = _entry_blocks(e, t)
        if len(chunks[-1]) + len(blocks) > MAX_BLOCKS - 1:
            chunks.append([])
        chunks[-1].extend(blocks)
    out = []
    for i, blocks in enumerate(chunks, start=1):
        part = f" ({i}/{len(chunks)})" if len(chunks) > 1 else ""
        count = t["section_count"](len(entries))
        head = _section(f"*📌 {section}*{part} · {count}")
        titles = ", ".join(escape_mrkdwn(e["title"]) for e in entries)
        out.append({"text": f"{section}{part}: {titles}"[:MAX_TEXT], "blocks": [head, *blocks]})
    return out


def _entry_blocks(e: dict, t: dict) -> list[dict]:
    heading = t["entry_heading"].format(rank=e["rank"], title="")
    title = _link(e["link"], escape_mrkdwn(e["title"]))
    lines = [f"*{heading}{title}*", _numbers(e, t)]
    if e["status"]:
        lines.append(_status(e["status"], t))
    blocks = [_section(_fit(lines)), _section(_summary(e["summary"], t))]
    trailers = _trailers(e, t) if e["type"] != "PULL" else ""
    if trailers:
        blocks.append(_section(trailers))
    blocks.append(_section(_mails(e, t)))
    blocks.append({"type": "divider"})
    return blocks[:BLOCKS_PER_ENTRY]


def _numbers(e: dict, t: dict) -> str:
    bits = []
    if e["version"] and e["type"] != "PULL":
        v = e["version"]
        version = _link(v["link"], f"v{v['number']}")
        if e["previous_version"]:
            p = e["previous_version"]
            version += f" ({t['previous']} {_link(p['link'], 'v' + str(p['number']))})"
        bits += [version, f"{t['patches']}: {e['patches']}"]
    mails = t["mails_detail"].format(week=e["mails_this_week"], total=e["mails_total"])
    bits.append(f"{t['entry_mails']}: {mails}")
    bits.append(f"{t['participants']}: {len(e['participants'])}")
    bits.append(f"{t['first_post']}: {utc_minute(e['first_post'])}")
    return " · ".join(bits)


def _status(status: dict, t: dict) -> str:
    words, proofs = status_line(
        status, t, escape=escape_mrkdwn, link=lambda label, url: _link(url, label), limit=3
    )
    return f"*{t['status']}:* {words}" + (" — " + "; ".join(proofs) if proofs else "")


def _summary(s: dict, t: dict) -> str:
    lines = []
    if s["background"]:
        lines.append(f"*{t['background']}:* {escape_mrkdwn(s['background'])}")
    lines.append(f"*{t['this_week']}:* {escape_mrkdwn(s['this_week'])}")
    source = s["source"] if s["source"] != "llm" else f"llm, {s['model']}"
    meta = f"_{t['source']}: {escape_mrkdwn(source)}_"
    if s["note"]:
        meta += f" · _{t['fallback']}: {escape_mrkdwn(s['note'])}_"
    return _fit([*lines, meta])


def _trailers(e: dict, t: dict) -> str:
    by_kind: dict[str, dict[str, list[int]]] = {}
    for p in e["trailers"]:
        for tr in p["trailers"]:
            by_kind.setdefault(tr["type"], {}).setdefault(tr["name"], []).append(p["n"])
    lines = []
    for kind in ("Reviewed-by", "Acked-by", "Tested-by"):
        people = by_kind.get(kind)
        if people:
            who = ", ".join(
                f"{escape_mrkdwn(name)} ({ranges(sorted(set(ns)))})" for name, ns in people.items()
            )
            lines.append(f"*{kind}:* {who}")
    return _fit(lines) if lines else ""


def _mails(e: dict, t: dict) -> str:
    """Covers and discussion first-hand; a posting's patches as one line (they are on lore)."""
    lines = [f"*{t['mail_list_plain']}* ({len(e['mails'])}):"]
    patches = [m for m in e["mails"] if m["kind"] == "patch"]
    shown = [m for m in e["mails"] if m["kind"] != "patch"] or patches[:1]
    for m in shown[:MAILS_SHOWN]:
        sender = escape_mrkdwn(m["from"]["name"] or m["from"]["email"])
        subject = escape_mrkdwn(m["subject"])
        lines.append(f"• `{utc_short(m['date'])}` {sender}: {_link(m['link'], subject)}")
    if patches and shown != patches[:1]:
        lines.append("• " + t["patch_mails"](len(patches)))
    hidden = len(shown) - MAILS_SHOWN
    if hidden > 0:
        lines.append(_link(e["link"], t["more_mails"].format(n=hidden)))
    return _fit(lines)


def _late_message(mails: list[dict], t: dict) -> dict:
    lines = [f"*{t['late_heading']}*"]
    for m in mails:
        line = t["late_line"].format(
            date=utc_minute(m["date"]),
            received=utc_minute(m["received"]),
            reason=t["reasons"].get(m["reason"], m["reason"]),
        )
        sender = escape_mrkdwn(m["from"]["name"])
        lines.append(f"• {_link(m['link'], escape_mrkdwn(m['subject']))} — {sender} · {line}")
    return {"text": t["late_heading"], "blocks": [_section(_fit(lines))]}


# ---- blocks within limits ---------------------------------------------------------------------


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict:
    return {"type": "section", "text": _mrkdwn(cut_mrkdwn(text, MAX_SECTION))}


def _header(text: str) -> dict:
    if len(text) > MAX_HEADER:
        text = text[: MAX_HEADER - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [_mrkdwn(cut_mrkdwn(text, MAX_SECTION))]}


def _fit(lines: list[str], limit: int = MAX_SECTION) -> str:
    """Whole lines while they fit, then "…"; a single overlong line is cut safely."""
    out: list[str] = []
    used = 0
    for line in lines:
        extra = len(line) + (1 if out else 0)
        if used + extra > limit - 2:
            if not out:
                return cut_mrkdwn(line, limit)
            out.append("…")
            break
        out.append(line)
        used += extra
    return "\n".join(out)
