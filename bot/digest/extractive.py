"""The default summariser: deterministic, no network, built from facts and the mails' words.

"This week" says what the database knows happened in the period — versions posted, replies,
who gave Reviewed/Acked/Tested-by on which patches, applied / pulled / changes requested —
then quotes up to three key sentences (questions first) from the period's mails, attributed
to their senders.  "Background" comes from the stored summary of an earlier period, else
from the facts of earlier mails; with neither it is omitted.  Sentences that name someone
outside the thread are never quoted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.digest.collate import CollatedMail
from bot.digest.grounding import Allowed, Directory, outsiders
from bot.digest.summary import Facts, Review, Summary, SummaryRequest

PROMPT_VERSION = "extractive-1"
MAX_QUOTES = 3
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“(])")
_GREETING_RE = re.compile(
    r"^(?:hi|hello|hey|dear|thanks|thank you|many thanks|cheers|regards|best|"
    r"sorry for|ping|gentle ping|\[gives )",
    re.I,
)
_CODE_RE = re.compile(r"[;{}]\s*$|->|==|&&|\|\||#define|^\s*[+-]{1,3}\S|^\s*\$ |\w\(\)|\w+_\w+\(")
_KEYWORDS = re.compile(
    r"\b(?:nak|nack|lgtm|looks good|applied|queued|respin|should|instead|why|bug|break|"
    r"regression|concern|agree|disagree|suggest|prefer|wrong|fix|issue|problem|question|"
    r"v\d+)\b",
    re.I,
)

_EN: dict[str, Any] = {
    "posted": "{name} posted v{version} ({patches}) on {date}",
    "resent": "{name} resent v{version} ({patches}) on {date}",
    "pull_sent": "{name} sent the pull request on {date}",
    "pull_merged": "Pulled by {by}{where}.",
    "following": ", following v{previous}",
    "patches": lambda n: "1 patch" if n == 1 else f"{n} patches",
    "replies": lambda n, k: (
        f"{n} {'reply' if n == 1 else 'replies'} from {k} {'person' if k == 1 else 'people'}."
    ),
    "no_replies": "No replies yet.",
    "started_now": "{name} started the discussion on {date}.",
    "review": "{kind}: {who}.",
    "whole": "whole series",
    "applied": "Applied by {by}{where}.",
    "pulled": "Pulled by {by}{where}.",
    "partially-applied": "Partly applied by {by}{where}.",
    "changes-requested": "Changes requested ({by}).",
    "superseded": "Superseded by {where}.",
    "where": " to {where}",
    "asked": "{name} asked: “{text}”",
    "said": "{name}: “{text}”",
    "cover": "The cover letter says: “{text}”",
    "bots": lambda n, who: f"{n} automated {'report' if n == 1 else 'reports'} ({who}).",
    "earlier_summary": "{period}: {text}",
    "first": "First posted on {date} by {name} (v{version})",
    "started": "Started on {date} by {name}",
    "latest": "; latest before this period: v{version} on {date}",
    "earlier": lambda n, k, r: (
        f"Earlier: {n} {'mail' if n == 1 else 'mails'} from {k} "
        f"{'person' if k == 1 else 'people'}"
        + (f", {r} review {'trailer' if r == 1 else 'trailers'}" if r else "")
        + "."
    ),
    "end": ".",
    "join": " ",
    "sep": "; ",
    "list": ", ",
    "paren": " ({})",
}
_ZH: dict[str, Any] = {
    "posted": "{name} 于 {date} 发布 v{version}（{patches}）",
    "resent": "{name} 于 {date} 重发 v{version}（{patches}）",
    "pull_sent": "{name} 于 {date} 发出 pull request",
    "pull_merged": "已由 {by} 拉取{where}。",
    "following": "，上一版为 v{previous}",
    "patches": lambda n: f"{n} 个补丁",
    "replies": lambda n, k: f"本周 {n} 封回复，来自 {k} 位参与者。",
    "no_replies": "本周暂无回复。",
    "started_now": "{name} 于 {date} 发起讨论。",
    "review": "{kind}：{who}。",
    "whole": "整个系列",
    "applied": "已由 {by} 合入{where}。",
    "pulled": "已由 {by} 纳入 pull request{where}。",
    "partially-applied": "部分补丁已由 {by} 合入{where}。",
    "changes-requested": "需要修改（{by}）。",
    "superseded": "已被 {where} 取代。",
    "where": " {where}",
    "asked": "{name} 提问：“{text}”。",
    "said": "{name}：“{text}”。",
    "cover": "封面信：“{text}”。",
    "bots": lambda n, who: f"自动化报告 {n} 封（{who}）。",
    "earlier_summary": "{period}：{text}",
    "first": "最早于 {date} 由 {name} 发布（v{version}）",
    "started": "由 {name} 于 {date} 发起",
    "latest": "；本周期之前的最新版本为 v{version}（{date}）",
    "earlier": lambda n, k, r: (
        f"此前共 {n} 封邮件，{k} 位参与者" + (f"，{r} 个审阅标签" if r else "") + "。"
    ),
    "end": "。",
    "join": "",
    "sep": "；",
    "list": "、",
    "paren": "（{}）",
}


@dataclass
class ExtractiveSummariser:
    name: str = "extractive"
    prompt_version: str = PROMPT_VERSION
    budget: float | None = None  # no network, no time budget

    def summarise(self, request: SummaryRequest, *, deadline: float | None = None) -> Summary:
        t = _ZH if request.lang == "zh" else _EN
        directory = request.directory
        allowed = Allowed.of(request.people)
        quotes = key_sentences(request.mails, allowed, directory, request.facts)
        parts = [*_fact_sentences(request.facts, request.mails, t)]
        parts += [_quote(q, t) for q in quotes]
        cited = [p.msgid for p in request.facts.posted]
        cited += [r.msgid for r in request.facts.reviews]
        if request.facts.status_in_period and request.facts.status_msgid:
            cited.append(request.facts.status_msgid)
        cited += [q.mail.msgid for q in quotes]
        return Summary(
            background=_background(request, t, allowed, directory),
            this_week=t["join"].join(p for p in parts if p),
            source="extractive",
            model=self.name,
            cited=tuple(dict.fromkeys(cited)),
        )


@dataclass(frozen=True, slots=True)
class Quote:
    mail: CollatedMail
    text: str
    question: bool
    cover: bool


def key_sentences(
    mails: Sequence[CollatedMail],
    allowed: Allowed,
    directory: Directory,
    facts: Facts | None = None,
    limit: int = MAX_QUOTES,
) -> list[Quote]:
    """Up to ``limit`` sentences worth quoting: questions and decisions first, one per mail,
    two per person, none naming someone outside the thread; returned in date order."""
    scored: list[tuple[int, int, int, Quote]] = []
    new_series = facts is not None and facts.posted and facts.earlier_mails == 0
    for mail in mails:
        if mail.kind == "cover" and new_series:
            first = next(iter(_sentences(mail.text)), None)
            if first and not outsiders(first, allowed, directory):
                scored.append((100, mail.label, 0, Quote(mail, first, False, True)))
        if mail.kind not in ("reply", "post"):
            continue
        for pos, sentence in enumerate(_sentences(mail.text)):
            if outsiders(sentence, allowed, directory):
                continue
            score = _score(sentence)
            if score > 0:
                quote = Quote(mail, sentence, "?" in sentence, False)
                scored.append((score, mail.label, pos, quote))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    chosen: list[Quote] = []
    per_person: dict[str, int] = defaultdict(int)
    used: set[str] = set()
    for _, _, _, q in scored:
        if q.mail.msgid in used or per_person[q.mail.email] >= 2:
            continue
        chosen.append(q)
        used.add(q.mail.msgid)
        per_person[q.mail.email] += 1
        if len(chosen) == limit:
            break
    return sorted(chosen, key=lambda q: q.mail.label)


def _score(sentence: str) -> int:
    score = 3 if sentence.rstrip().endswith("?") else 0
    score += min(3, len(_KEYWORDS.findall(sentence)))
    if 40 <= len(sentence) <= 200:
        score += 1
    return score if score >= 2 else 0


def _sentences(text: str) -> list[str]:
    out = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        lines = [ln.strip() for ln in paragraph.splitlines()]
        if not lines or any(_CODE_RE.search(ln) for ln in lines) or lines[0].startswith(">"):
            continue
        joined = " ".join(ln for ln in lines if ln)
        for sentence in _SENTENCE_END_RE.split(joined):
            sentence = sentence.strip()
            if _quotable(sentence):
                out.append(sentence)
    return out


def _quotable(sentence: str) -> bool:
    if not 25 <= len(sentence) <= 240 or _GREETING_RE.match(sentence):
        return False
    return sum(c.isalpha() for c in sentence) >= 0.6 * len(sentence)


def _fact_sentences(facts: Facts, mails: Sequence[CollatedMail], t: dict) -> list[str]:
    out = []
    previous = facts.previous_version
    pull = facts.category == "PULL"
    for p in facts.posted:
        template = t["pull_sent"] if pull else t["resent"] if p.resend else t["posted"]
        line = template.format(
            name=p.name, version=p.version, patches=t["patches"](p.patches), date=p.date[:10]
        )
        if previous is not None and previous != p.version:
            line += t["following"].format(previous=previous)
        out.append(line + t["end"])
        previous = p.version
    for m in mails:
        if m.kind == "post":
            out.append(t["started_now"].format(name=m.name, date=m.date[:10]))
    replies = [m for m in mails if m.kind == "reply"]
    if replies:
        out.append(t["replies"](len(replies), len({m.email for m in replies})))
    elif facts.posted or any(m.kind == "post" for m in mails):
        out.append(t["no_replies"])
    out += _review_sentences(facts.reviews, t)
    if facts.status_in_period and facts.status in (
        "applied",
        "pulled",
        "partially-applied",
        "changes-requested",
        "superseded",
    ):
        where = t["where"].format(where=facts.status_where) if facts.status_where else ""
        if facts.status == "superseded":
            where = facts.status_where or ""
        status = "pull_merged" if pull and facts.status == "applied" else facts.status
        out.append(t[status].format(by=facts.status_by or "?", where=where))
    bots = [m for m in mails if m.kind == "bot"]
    if bots:
        out.append(t["bots"](len(bots), t["list"].join(sorted({m.name for m in bots}))))
    return out


def _review_sentences(reviews: Sequence[Review], t: dict) -> list[str]:
    by_kind: dict[str, dict[tuple[str, str], list[Review]]] = defaultdict(lambda: defaultdict(list))
    for r in reviews:
        by_kind[r.kind][(r.name, r.email)].append(r)
    out = []
    for kind in ("Reviewed-by", "Acked-by", "Tested-by"):
        people = by_kind.get(kind)
        if not people:
            continue
        who = []
        for (name, _email), given in people.items():
            who.append(name + t["paren"].format(_versions_and_patches(given, t)))
        out.append(t["review"].format(kind=kind, who=t["list"].join(who)))
    return out


def _versions_and_patches(given: Sequence[Review], t: dict) -> str:
    per_version: dict[int, set[int]] = defaultdict(set)
    whole: set[int] = set()
    for r in given:
        if r.patches:
            per_version[r.version].update(r.patches)
        else:
            whole.add(r.version)
    parts = []
    for version in sorted(set(per_version) | whole):
        if version in whole:
            parts.append(f"v{version}: {t['whole']}")
        else:
            parts.append(f"v{version}: {ranges(sorted(per_version[version]))}")
    return t["sep"].join(parts)


def ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 5, 7, 8] → "1-3, 5, 7-8"."""
    out: list[str] = []
    start = prev = None
    for n in numbers:
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def _quote(q: Quote, t: dict) -> str:
    if q.cover:
        return t["cover"].format(text=q.text)
    return t["asked" if q.question else "said"].format(name=q.mail.name, text=q.text)


def _background(
    request: SummaryRequest, t: dict, allowed: Allowed, directory: Directory
) -> str | None:
    if request.earlier_summary is not None:
        earlier = request.earlier_summary
        return t["earlier_summary"].format(period=earlier.period_key, text=earlier.this_week)
    f = request.facts
    if not f.earlier_mails or not f.first_post:
        return None
    if f.kind == "series" and f.first_version is not None:
        date, name, version = f.first_post[:10], f.first_author, f.first_version
        line = t["first"].format(date=date, name=name, version=version)
        if f.latest_before and f.latest_before[0] != f.first_version:
            line += t["latest"].format(version=f.latest_before[0], date=f.latest_before[1][:10])
    else:
        line = t["started"].format(date=f.first_post[:10], name=f.first_author)
    parts = [line + t["end"], t["earlier"](f.earlier_mails, f.earlier_people, f.earlier_reviews)]

    cover = next((m for m in request.earlier if m.kind == "cover"), None)
    first = next(iter(_sentences(cover.text)), None) if cover else None
    if first and not outsiders(first, allowed, directory):
        parts.append(t["cover"].format(text=first))
    return t["join"].join(parts)
