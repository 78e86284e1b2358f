"""The digest model as Markdown (en, zh): header, totals with the category split, the
buckets as an overview (applied, new series, new versions, waiting for review, discussion,
reports — one line per entry), then the old report's shape: one section per category with,
for each series or thread, its numbers, status, summary (background / this week), review
trailers and the mail list — every mail a lore link, every time in UTC.  Entries are
numbered within each section.  Text from mail is escaped so it cannot inject Markdown/HTML.
"""

from __future__ import annotations

import re

from bot.digest.buckets import BUCKETS
from bot.digest.entries import SECTIONS
from bot.digest.extractive import ranges
from bot.digest.labels import (
    applied_in_time,
    coverage_words,
    labels,
    period_text,
    status_line,
    status_words,
    summaries_text,
    utc_minute,
    utc_short,
    who_reviewed,
)

_MD_SPECIAL_RE = re.compile(r"([\\`*_\[\]|#])")
MAX_MAILS = 200  # per entry; the rest are one lore link away


def md_escape(text: str | None) -> str:
    """Mail text as literal Markdown: no emphasis, links, tables or HTML from it."""
    if not text:
        return ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL_RE.sub(r"\\\1", " ".join(text.split()))


def _link(label: str, url: str) -> str:
    return f"[{label}]({url})"


def render_markdown(model: dict, lang: str | None = None, *, chart: str | None = None) -> str:
    """The whole digest; ``chart`` is the path (or URL) of the activity PNG, if any."""
    t = labels(lang or model.get("lang", "en"))
    out: list[str] = []
    out += _header(model, t)
    out += _totals(model, t)
    if chart and model["entries"]:
        out += [f"![{t['chart']}]({chart})", ""]
    if not model["entries"]:
        out += [t["empty"], ""]
    active = [e for e in model["entries"] if e["mails_this_week"]]
    where = {}
    for section in SECTIONS:
        entries = [e for e in active if e["section"] == section]
        for number, e in enumerate(entries, start=1):
            where[e["key"]] = (section, number)
    if model["entries"]:
        out += _overview(model, where, t)
    for section in SECTIONS:
        entries = [e for e in active if e["section"] == section]
        if entries:
            out += _section(section, entries, t)
    if model["late_mails"]:
        out += _late(model["late_mails"], t)
    return "\n".join(out).rstrip() + "\n"


def _header(model: dict, t: dict) -> list[str]:
    period = model["period"]
    title = t["title"] if period.get("iso_week") else t["title_range"]
    suffix = f" — {period['iso_week']}" if period.get("iso_week") else ""
    how = summaries_text(model, t)
    return [
        f"# {title}{suffix}",
        "",
        f"**{t['period']}**: {period_text(period)}",
        "",
        f"**{t['generated']}**: {utc_minute(model['generated_at'])} · **{t['summaries']}**: {how}",
        "",
    ]


def _totals(model: dict, t: dict) -> list[str]:
    n = model["totals"]
    mails = f"{n['mails']}" + (f" ({t['bots'].format(n=n['bot_mails'])})" if n["bot_mails"] else "")
    series = t["series_detail"](n["series"], n["new_series"], n["new_versions"])
    out = [
        f"## {t['totals']}",
        "",
        f"- **{t['mails']}**: {mails}",
        f"- **{t['threads']}**: {n['threads']}",
        f"- **{t['series']}**: {series}",
        f"- **{t['participants']}** ({t['by_address']}): {n['participants']}",
    ]
    if n["late_mails"]:
        out.append(f"- **{t['late']}**: {t['late_detail'].format(n=n['late_mails'])}")
    out += ["", f"### {t['categories']}", ""]
    for name, c in n["categories"].items():
        if c["entries"]:
            out.append(f"- **{name}**: {t['category_line'](c['entries'], c['mails'])}")
    top = model["participants"][:10]
    if top:
        people = ", ".join(f"{md_escape(p['name'])} ({p['mails']})" for p in top)
        out += ["", f"**{t['top_people']}**: {people}"]
    return [*out, ""]


def _overview(model: dict, where: dict[str, tuple[str, int]], t: dict) -> list[str]:
    """The buckets, one line per entry, each pointing at its full entry below."""
    by_key = {e["key"]: e for e in model["entries"]}
    out = [f"## {t['overview']}", ""]
    for name in BUCKETS:
        keys = model["buckets"].get(name, [])
        if not keys:
            continue
        out += [f"### {t['buckets'][name]} ({len(keys)})", ""]
        for key in keys:
            out.append(_overview_line(by_key[key], where.get(key), t))
        out.append("")
    return out


def _overview_line(e: dict, where: tuple[str, int] | None, t: dict) -> str:
    bits = [_link(md_escape(e["title"]), e["link"])]
    if e["version"] and e["type"] != "PULL":
        bits.append(f"v{e['version']['number']}")
    if e["author"]:
        bits.append(md_escape(e["author"]["name"] or e["author"]["email"]))
    if e["status"] and e["status"]["state"] != "new":
        bits.append(status_words(e["status"], t))
    review = e.get("review")
    coverage = coverage_words(e, t)
    if coverage:
        bits.append(coverage)
    elif review and applied_in_time(e) and review["by"]:
        bits.append(who_reviewed(review["by"], md_escape, patches=False))
    if e.get("waiting"):
        bits.append(t["days_waiting"](e["waiting"]["days"]))
    if e["bucket"] == "new_versions" and e["previous_version"]:
        previous = f"v{e['previous_version']['number']}"
        total = review["patches"] if review else 0
        bits.append(t["carried"](e["carried_over"], total, previous))
    if e.get("about"):
        bits.append(f"{t['about']}: {_link(md_escape(e['about']['title']), e['about']['link'])}")
    bits.append(t["mails_n"](e["mails_this_week"]) if e["mails_this_week"] else t["quiet"])
    if where:
        bits.append(f"→ {where[0]} #{where[1]}")
    return f"{e['number']}. " + " · ".join(bits)


def _section(name: str, entries: list[dict], t: dict) -> list[str]:
    out = ["---", "", f"## 📌 {name}", "", t["section_count"](len(entries)), ""]
    for number, e in enumerate(entries, start=1):
        out += _entry(e, number, t)
    return out


def _entry(e: dict, number: int, t: dict) -> list[str]:
    heading = t["entry_heading"].format(rank=number, title=md_escape(e["title"]))
    out = [f"### {heading}", "", _numbers(e, t), ""]
    if e["status"]:
        out += [_status(e["status"], t), ""]
    if e["participants"]:
        people = ", ".join(f"{md_escape(p['name'])} ({p['mails']})" for p in e["participants"])
        out += [f"**👥 {t['participants']}**: {people}", ""]
    out += _summary(e["summary"], t)
    if e["kind"] == "series" and e["type"] != "PULL":
        out += _trailers(e, t)
    out += _mails(e, t)
    return out


def _numbers(e: dict, t: dict) -> str:
    parts = []
    if e["version"] and e["type"] != "PULL":
        v = e["version"]
        version = _link(f"v{v['number']}", v["link"])
        if e["previous_version"]:
            p = e["previous_version"]
            previous = _link("v" + str(p["number"]), p["link"])
            version += f" ({t['previous']}: {previous})"
        parts.append(f"**{t['version']}**: {version}")
        parts.append(f"**{t['patches']}**: {e['patches']}")
    mails = t["mails_detail"].format(week=e["mails_this_week"], total=e["mails_total"])
    parts.append(f"**📧 {t['entry_mails']}**: {mails}")
    parts.append(f"**👥 {t['participants']}**: {len(e['participants'])}")
    parts.append(f"**📅 {t['first_post']}**: {utc_minute(e['first_post'])}")
    parts.append(_link("lore", e["link"]))
    return " | ".join(parts)


def _status(status: dict, t: dict) -> str:
    words, proofs = status_line(status, t, escape=md_escape, link=_link)
    return f"**{t['status']}**: {words}" + (" — " + "; ".join(proofs) if proofs else "")


def _summary(s: dict, t: dict) -> list[str]:
    heading = t["summary_llm"] if s["source"] == "llm" else t["summary_extractive"]
    out = [f"#### {heading}", ""]
    if s["background"]:
        out += [f"**{t['background']}**: {md_escape(s['background'])}", ""]
    out += [f"**{t['this_week']}**: {md_escape(s['this_week'])}", ""]
    meta = []
    if s["source"] == "llm":
        meta.append(f"*{t['ai_summary'](len(s.get('cited') or []))} ({md_escape(s['model'])})*")
    if s["note"]:
        meta.append(f"*{t['fallback']}: {md_escape(s['note'])}*")
    return [*out, " · ".join(meta), ""] if meta else out


def _trailers(e: dict, t: dict) -> list[str]:
    out = [f"#### {t['trailers']} (v{e['version']['number']})", ""]
    by_kind: dict[str, dict[str, list[int]]] = {}
    untrailed = []
    for p in e["trailers"]:
        if not p["trailers"]:
            untrailed.append(p["n"])
        for tr in p["trailers"]:
            by_kind.setdefault(tr["type"], {}).setdefault(tr["name"], []).append(p["n"])
    if not by_kind:
        return [*out, t["no_trailers"], ""]
    for kind in ("Reviewed-by", "Acked-by", "Tested-by"):
        people = by_kind.get(kind)
        if people:
            who = ", ".join(
                f"{md_escape(name)} ({ranges(sorted(set(ns)))})" for name, ns in people.items()
            )
            out.append(f"- **{kind}**: {who}")
    if untrailed:
        out.append("- " + t["untrailed"](untrailed, ranges(untrailed), len(e["trailers"])))
    return [*out, ""]


def _mails(e: dict, t: dict) -> list[str]:
    out = [f"#### {t['mail_list']}", ""]
    for i, m in enumerate(e["mails"][:MAX_MAILS], start=1):
        sender = f"{md_escape(m['from']['name'])} ({md_escape(m['from']['email'])})"
        out.append(f"{i}. **[{utc_short(m['date'])}]** {_link(md_escape(m['subject']), m['link'])}")
        out.append(f"   - {t['sender']}: {sender}")
    if len(e["mails"]) > MAX_MAILS:
        out.append(t["more_mails"].format(n=len(e["mails"]) - MAX_MAILS))
    return [*out, ""]


def _late(mails: list[dict], t: dict) -> list[str]:
    out = ["---", "", f"## {t['late_heading']}", ""]
    for m in mails:
        line = t["late_line"].format(
            date=utc_minute(m["date"]),
            received=utc_minute(m["received"]),
            reason=t["reasons"].get(m["reason"], m["reason"]),
        )
        subject = _link(md_escape(m["subject"]), m["link"])
        out.append(f"- {subject} — {md_escape(m['from']['name'])} · {line}")
    return [*out, ""]
