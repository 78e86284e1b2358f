"""The digest model as Slack Block Kit: one parent message a maintainer reads on one screen,
then one thread reply per non-empty bucket (bot.digest.buckets).

- Parent: period, one totals line, and per bucket its count and its top items, one line
  each (status emoji, linked title, vN, author, "R-b 12/40", mails this week).
  ≤ ``PARENT_BLOCKS`` blocks and ≤ ``PARENT_CHARS`` characters.
- Replies: each entry a compact card of ≤ 6 lines — title/version/author/status, review
  coverage once, the summary (background only when there is one: it is grounded), links
  (lore, previous version, ``b4 shazam``) — with a *Details* button that answers
  ephemerally with the full entry (``render_details``).  Numbering restarts at 1 in each
  message.  ≤ ``REPLY_BLOCKS`` blocks and ≤ ``REPLY_CHARS`` characters: entries that do not
  fit as cards are listed one line each, and what does not fit at all is counted.
- LLM summaries carry "AI summary · cites N mails"; extractive ones nothing.

Every piece of mail text goes through ``escape_mrkdwn`` so ``<!channel>``, ``<!here>``,
``<@U…>`` and ``<#C…>`` written in a mail show literally and never notify anyone.
"""

from __future__ import annotations

import json
import re

from bot.blockkit import MAX_BLOCKS, MAX_CONTEXT, MAX_HEADER, MAX_SECTION, MAX_VALUE
from bot.digest.buckets import BUCKETS
from bot.digest.labels import (
    applied_in_time,
    count_text,
    coverage_words,
    labels,
    period_text,
    status_line,
    summaries_text,
    utc_minute,
    utc_short,
    who_reviewed,
)
from bot.mrkdwn import cut_mrkdwn, escape_mrkdwn

MAX_TEXT = 3000  # the notification fallback ``text`` we send (Slack allows more)
PARENT_BLOCKS = 20
PARENT_CHARS = 3000
REPLY_BLOCKS = 40
REPLY_CHARS = 8000
TOP_ITEMS = 3
TITLE_CHARS = 90  # titles in one-line items
SUMMARY_CHARS = 420  # "this week" on a card; the whole text is behind Details
BACKGROUND_CHARS = 200
DETAILS_ACTION = "kvmarm_digest_details"
_REVIEW_SENTENCE_RE = re.compile(r"(?:Reviewed|Acked|Tested)-by[:：][^\n]*?[)）][.。]\s*")

EMOJI = {
    "applied": "✅",
    "pulled": "✅",
    "partially-applied": "🟡",
    "superseded": "🔁",
    "changes-requested": "✏️",
    "dropped": "❌",
    "idle": "💤",
    "new": "🆕",
}
BUCKET_EMOJI = {
    "applied": "✅",
    "new_series": "🆕",
    "new_versions": "🔁",
    "waiting": "⏳",
    "discussion": "💬",
    "reports": "🚨",
}


def _link(url: str, label: str) -> str:
    """A link we made; ``label`` must already be escaped, ``url`` is percent-encoded."""
    return f"<{url}|{label.replace('|', '¦')}>"


def render_slack(model: dict) -> list[dict]:
    """``[parent, reply, reply, …]``: each ``{"text": fallback, "blocks": [...]}``."""
    t = labels(model.get("lang", "en"))
    by_key = {e["key"]: e for e in model["entries"]}
    buckets = {name: [by_key[k] for k in model["buckets"].get(name, [])] for name in BUCKETS}
    messages = [_parent(model, buckets, t)]
    for name in BUCKETS:
        if buckets[name]:
            messages.append(_bucket_message(model, name, buckets[name], t))
    return messages


def message_chars(message: dict) -> int:
    """The characters a message shows: every text in its blocks."""
    total = 0
    for block in message["blocks"]:
        total += _block_chars(block)
    return total


def _block_chars(block: dict) -> int:
    texts = []
    if "text" in block:
        texts.append(block["text"]["text"])
    texts += [f["text"] for f in block.get("fields", [])]
    texts += [
        e["text"] for e in block.get("elements", []) if "text" in e and isinstance(e["text"], str)
    ]
    texts += [
        e["text"]["text"] for e in block.get("elements", []) if isinstance(e.get("text"), dict)
    ]
    if "accessory" in block:
        texts.append(block["accessory"]["text"]["text"])
    return sum(len(x) for x in texts)


# ---- parent ---------------------------------------------------------------------------------


def notification_text(model: dict, t: dict | None = None) -> str:
    """ "kvmarm 2022-W06 — 3 applied, 2 new versions, 4 waiting for review"."""
    t = t or labels(model.get("lang", "en"))
    period = model["period"]
    name = period.get("iso_week") or f"{period['first_day']} – {period['last_day']}"
    counts = [
        count_text(t, b, len(model["buckets"][b])) for b in BUCKETS if model["buckets"].get(b)
    ]
    sep = "，" if model.get("lang") == "zh" else ", "
    return f"kvmarm {name} — " + (sep.join(counts) if counts else t["empty"])


def _parent(model: dict, buckets: dict[str, list[dict]], t: dict) -> dict:
    period = model["period"]
    name = period.get("iso_week") or period["first_day"] + " – " + period["last_day"]
    title = f"{t['title'] if period.get('iso_week') else t['title_range']} · {name}"
    head = [
        _header(title),
        _context(
            f"{period_text(period)} · {t['generated']}: {utc_minute(model['generated_at'])} · "
            f"{escape_mrkdwn(summaries_text(model, t))}"
        ),
        _section(_totals_line(model, t)),
    ]
    text = notification_text(model, t)[:MAX_TEXT]
    if not model["entries"]:
        return {"text": text, "blocks": [*head, _section(t["empty"])]}
    for top in range(TOP_ITEMS, 0, -1):
        blocks = [*head, {"type": "divider"}]
        for name_ in BUCKETS:
            if buckets[name_]:
                blocks.append(_section(_bucket_overview(name_, buckets[name_], t, top)))
        blocks.append(_context(t["in_thread"]))
        message = {"text": text, "blocks": blocks[:PARENT_BLOCKS]}
        if message_chars(message) + len(text) <= PARENT_CHARS:
            return message
    return message


def _totals_line(model: dict, t: dict) -> str:
    n = model["totals"]
    bits = [
        f"*{t['mails']}* {n['mails']}"
        + (f" ({t['bots'].format(n=n['bot_mails'])})" if n["bot_mails"] else ""),
        f"*{t['threads']}* {n['threads']}",
        f"*{t['series']}* " + t["series_detail"](n["series"], n["new_series"], n["new_versions"]),
        f"*{t['participants']}* {n['participants']}",
    ]
    categories = " ".join(
        f"{name} {c['entries']}" for name, c in n["categories"].items() if c["entries"]
    )
    if categories:
        bits.append(categories)
    if n["late_mails"]:
        bits.append(t["late_count"].format(n=n["late_mails"]))
    return " · ".join(bits)


def _bucket_overview(name: str, entries: list[dict], t: dict, top: int) -> str:
    lines = [f"*{BUCKET_EMOJI[name]} {t['buckets'][name]} ({len(entries)})*"]
    for e in entries[:top]:
        lines.append(one_line(e, t))
    if len(entries) > top:
        lines.append(t["overview_more"].format(n=len(entries) - top))
    return _fit(lines)


def one_line(e: dict, t: dict, number: int | None = None) -> str:
    """emoji, linked title, vN, author, "R-b 12/40", mails this week — one line."""
    title = _cut(e["title"], TITLE_CHARS)
    bits = [f"{emoji_of(e)} {_link(e['link'], escape_mrkdwn(title))}"]
    if e["version"] and e["type"] != "PULL":
        bits.append(f"v{e['version']['number']}")
    if e["author"]:
        bits.append(escape_mrkdwn(e["author"]["name"] or e["author"]["email"]))
    review = e.get("review")
    if review and review["patches"] and e["type"] != "PULL" and not applied_in_time(e):
        bits.append(f"R-b {review['reviewed']}/{review['patches']}")
    bits.append(t["mails_n"](e["mails_this_week"]) if e["mails_this_week"] else t["quiet"])
    prefix = f"{number}. " if number is not None else ""
    return prefix + " · ".join(bits)


def emoji_of(e: dict) -> str:
    """The entry's state as of the period end: an emoji cannot say "after this period", so
    a status decided later shows as the undecided one it was then (its words say the rest)."""
    if e["kind"] == "thread":
        return "🚨" if e["bucket"] == "reports" else "💬"
    if e["bucket"] == "reports":
        return "🚨"
    status = e["status"] or {}
    state = "new" if status.get("after_period") else status.get("state")
    if e["bucket"] == "waiting" and state in ("new", None):
        return "⏳"
    return EMOJI.get(state or "", "•")


# ---- one reply per bucket ---------------------------------------------------------------------


def _bucket_message(model: dict, name: str, entries: list[dict], t: dict) -> dict:
    """The bucket's reply: cards while they fit with one line left for every later entry,
    then those lines; whatever still does not fit is counted."""
    period_key = model["period"]["key"]
    lang = model.get("lang", "en")
    head = _section(f"*{BUCKET_EMOJI[name]} {t['buckets'][name]}* · {len(entries)}")
    blocks = [head]
    used = _block_chars(head) + 300  # the fallback text and the closing count
    lines = [one_line(e, t, number) for number, e in enumerate(entries, start=1)]
    after = [0] * (len(lines) + 1)  # characters of the one-line items from i on
    for i in range(len(lines) - 1, -1, -1):
        after[i] = after[i + 1] + len(lines[i]) + 1
    cards = 0
    for number, e in enumerate(entries, start=1):
        card = card_blocks(e, t, number, period_key, lang)
        cost = sum(_block_chars(b) for b in card)
        rest_blocks = -(-after[number] // (MAX_SECTION - 10)) + 1
        if (
            len(blocks) + len(card) + rest_blocks > REPLY_BLOCKS
            or used + cost + min(after[number], REPLY_CHARS // 2) > REPLY_CHARS
        ):
            break
        blocks += card
        used += cost
        cards += 1
    rest = lines[cards:]
    shown = _fit_count(rest, REPLY_CHARS - used)
    for chunk in _chunks("", rest[:shown]):
        if chunk.strip() and len(blocks) < REPLY_BLOCKS - 1:
            blocks.append(_section(chunk.strip("\n")))
    listed = sum(len(b["text"]["text"].splitlines()) for b in blocks[1 + _card_blocks(blocks) :])
    if cards + listed < len(entries):
        more = t["in_bucket_more"].format(n=len(entries) - cards - listed, week=period_key)
        blocks.append(_context(more))
    text = f"{t['buckets'][name]} ({len(entries)}) — {notification_text(model, t)}"
    return {"text": text[:MAX_TEXT], "blocks": blocks[:REPLY_BLOCKS]}


def _card_blocks(blocks: list[dict]) -> int:
    """How many of a reply's blocks (after its heading) belong to cards."""
    n = 0
    for b in blocks[1:]:
        if "accessory" not in b and b["type"] != "context":
            break
        n += 1
    return n


def card_blocks(e: dict, t: dict, number: int, period_key: str, lang: str) -> list[dict]:
    """One entry as a card: a section of ≤ 6 lines with a Details button, plus a context
    line when the summary was written by the LLM."""
    lines = [_card_title(e, t, number), *_card_review(e, t)]
    s = e.get("summary")
    if s and s.get("background"):
        lines.append(
            f"_{t['background']}:_ "
            + escape_mrkdwn(_cut(without_reviews(s["background"]), BACKGROUND_CHARS))
        )
    if s and s.get("this_week"):
        lines.append(escape_mrkdwn(_cut(without_reviews(s["this_week"]), SUMMARY_CHARS)))
    if e.get("about"):
        lines.append(_about(e["about"], t))
    lines.append(_links(e))
    section = _section(_fit(lines[:6]))
    value = json.dumps({"p": period_key, "e": e["key"], "l": lang}, separators=(",", ":"))
    if len(value) <= MAX_VALUE:
        section["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": t["details"], "emoji": False},
            "action_id": DETAILS_ACTION,
            "value": value,
        }
    blocks = [section]
    if s and s.get("source") == "llm":
        blocks.append(_context(t["ai_summary"](len(s.get("cited") or []))))
    return blocks


def _card_title(e: dict, t: dict, number: int | None) -> str:
    title = _link(e["link"], escape_mrkdwn(_cut(e["title"], 200)))
    bits = [f"*{number}. {title}*" if number is not None else f"*{title}*"]
    if e["version"] and e["type"] != "PULL":
        bits.append(f"v{e['version']['number']}")
    if e["author"]:
        bits.append(escape_mrkdwn(e["author"]["name"] or e["author"]["email"]))
    if e["status"]:
        words, proofs = status_line(
            e["status"], t, escape=escape_mrkdwn, link=lambda label, url: _link(url, label), limit=1
        )
        bits.append(f"{emoji_of(e)} {words}" + (f" ({proofs[0]})" if proofs else ""))
    bits.append(t["mails_n"](e["mails_this_week"]) if e["mails_this_week"] else t["quiet"])
    return " · ".join(bits)


def _card_review(e: dict, t: dict) -> list[str]:
    """Review coverage, once: who gave what on which patches, how many lack a review (not
    once the version is applied)."""
    review = e.get("review")
    if not review or e["type"] == "PULL" or not review["patches"]:
        return (
            [t["bot_reports"](e["bot_mails"])]
            if e.get("bot_mails") and e["kind"] == "series"
            else []
        )
    who = who_reviewed(review["by"], escape_mrkdwn)
    total = review["patches"]
    state = coverage_words(e, t)  # None once applied: who reviewed it, no count
    bits = [who or t["no_reviews"], state] if state else [who] if who else []
    if e.get("waiting"):
        bits.append(t["days_waiting"](e["waiting"]["days"]))
    if e["bucket"] == "new_versions" and e["previous_version"]:
        previous = f"v{e['previous_version']['number']}"
        bits.append(t["carried"](e["carried_over"], total, previous))
    if e.get("bot_mails"):
        bits.append(t["bot_reports"](e["bot_mails"]))
    return [" · ".join(bits)] if bits else []


def _about(about: dict, t: dict) -> str:
    where = ""
    if about.get("bucket"):
        where = f" ({t['buckets'][about['bucket']]} #{about['number']})"
    return f"{t['about']}: {_link(about['link'], escape_mrkdwn(_cut(about['title'], 120)))}{where}"


def _links(e: dict) -> str:
    bits = [_link(e["link"], "lore")]
    if e["previous_version"] and e["type"] != "PULL":
        p = e["previous_version"]
        bits.append(_link(p["link"], f"v{p['number']}"))
    if e["kind"] == "series" and e["type"] != "PULL" and e["version"]:
        bits.append(f"`b4 shazam {escape_mrkdwn(e['version']['key'])}`")
    return " · ".join(bits)


def without_reviews(text: str) -> str:
    """The summary minus the extractive summariser's trailer sentences ("Reviewed-by: Bob
    (v2: 1)."): the card shows review coverage once, on its own line."""
    return _REVIEW_SENTENCE_RE.sub("", text).strip()


# ---- Details: the whole entry, ephemeral ---------------------------------------------------


def render_details(entry: dict, model: dict) -> dict:
    """The full entry for the *Details* button: status with evidence, summary, trailers per
    patch, every mail with its time and link — an ephemeral message within Block Kit limits."""
    t = labels(model.get("lang", "en"))
    e = entry
    blocks = [_section(_card_title(e, t, None))]
    facts = []
    if e["status"]:
        words, proofs = status_line(
            e["status"], t, escape=escape_mrkdwn, link=lambda label, url: _link(url, label)
        )
        facts.append(f"*{t['status']}:* {words}" + (" — " + "; ".join(proofs) if proofs else ""))
    facts += _card_review(e, t)
    if e.get("about"):
        facts.append(_about(e["about"], t))
    facts.append(_links(e))
    blocks.append(_section(_fit(facts)))
    s = e.get("summary")
    if s:
        lines = []
        if s.get("background"):
            lines.append(f"*{t['background']}:* {escape_mrkdwn(s['background'])}")
        lines.append(f"*{t['this_week']}:* {escape_mrkdwn(s['this_week'])}")
        if s.get("note"):
            lines.append(f"_{t['fallback']}: {escape_mrkdwn(s['note'])}_")
        blocks.append(_section(_fit(lines)))
        if s.get("source") == "llm":
            blocks.append(_context(t["ai_summary"](len(s.get("cited") or []))))
    patches = [_patch_line(p) for p in e.get("trailers") or []]
    if patches:
        blocks += [_section(chunk) for chunk in _chunks(f"*{t['per_patch']}*", patches)]
    mails = [
        f"• `{utc_short(m['date'])}` {escape_mrkdwn(m['from']['name'] or m['from']['email'])}: "
        f"{_link(m['link'], escape_mrkdwn(_cut(m['subject'], 150)))}"
        for m in e["mails"]
    ]
    if mails:
        heading = f"*{t['mail_list_plain']}* ({len(mails)})"
        blocks += [_section(chunk) for chunk in _chunks(heading, mails)]
    if len(blocks) > MAX_BLOCKS:
        blocks = [
            *blocks[: MAX_BLOCKS - 1],
            _context(_link(e["link"], t["more_mails"].format(n="…"))),
        ]
    return {
        "response_type": "ephemeral",
        "text": escape_mrkdwn(_cut(e["title"], 150)),
        "blocks": blocks,
    }


def _patch_line(p: dict) -> str:
    given = ", ".join(
        f"{tr['type'].removesuffix('-by')} {escape_mrkdwn(tr['name'])}" for tr in p["trailers"]
    )
    subject = _link(p["link"], escape_mrkdwn(_cut(p["subject"], 100)))
    return f"{p['n']}. {subject} — {given or '—'}"


def _chunks(heading: str, lines: list[str]) -> list[str]:
    """Lines grouped into section texts of ≤ MAX_SECTION characters (heading on the first)."""
    out: list[str] = []
    current = [heading]
    size = len(heading)
    for line in lines:
        line = cut_mrkdwn(line, 600)
        if size + len(line) + 1 > MAX_SECTION - 10:
            out.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        out.append("\n".join(current))
    return out


# ---- blocks within limits ---------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict:
    return {"type": "section", "text": _mrkdwn(cut_mrkdwn(text, MAX_SECTION))}


def _header(text: str) -> dict:
    if len(text) > MAX_HEADER:
        text = text[: MAX_HEADER - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _context(text: str) -> dict:
    return {"type": "context", "elements": [_mrkdwn(cut_mrkdwn(text, MAX_CONTEXT))]}


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


def _fit_count(lines: list[str], room: int) -> int:
    """How many whole lines fit in ``room`` characters."""
    used = 0
    for i, line in enumerate(lines):
        used += len(line) + 1
        if used > room:
            return i
    return len(lines)
