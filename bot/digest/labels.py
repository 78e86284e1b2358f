"""Words the renderers print, in English and Chinese (the Chinese labels are the old report's:
生成时间, 分析周期, 总体统计, 总邮件数, 总 Thread 数, 分类分布, 邮件数, 参与者, 开始时间, AI 总结,
之前讨论要点, 本周新讨论中进展, 邮件列表, 发件人), plus UTC time formatting.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.digest.extractive import ranges
from storage.messages import from_iso

_VERSION_RE = re.compile(r"v\d+")

EN = {
    "title": "kvmarm weekly digest",
    "title_range": "kvmarm digest",
    "period": "Period",
    "generated": "Generated",
    "summaries": "Summaries",
    "totals": "Totals",
    "mails": "Mails",
    "entry_mails": "Mails",
    "how": "{name} — {llm} by the LLM, {extractive} extractive",
    "fallbacks": lambda n: (
        f"{n} LLM {'summary' if n == 1 else 'summaries'} replaced by extractive"
        f" {'one' if n == 1 else 'ones'} (see notes)"
    ),
    "out_of_time": lambda n: (
        f"the LLM time budget ran out: {n} {'entry' if n == 1 else 'entries'}"
        " summarised extractively"
    ),
    "bots": "{n} from bots",
    "threads": "Threads",
    "series": "Series",
    "series_detail": lambda n, new, versions: (
        f"{n} active — {new} new, {versions} new {'version' if versions == 1 else 'versions'}"
    ),
    "participants": "Participants",
    "by_address": "by address",
    "late": "Late mail",
    "late_detail": (
        "{n} received in this period but dated outside it (listed at the end, not counted)"
    ),
    "categories": "Categories",
    "category_line": lambda n, m: (
        f"{n} {'entry' if n == 1 else 'entries'} ({m} {'mail' if m == 1 else 'mails'})"
    ),
    "entries": "entries",
    "top_people": "Most active participants",
    "top_items": "Most active",
    "entry_heading": "{rank}. {title}",
    "section_count": lambda n: f"{n} {'entry' if n == 1 else 'entries'}",
    "version": "Version",
    "previous": "previous",
    "patches": "Patches",
    "mails_detail": "{week} this week / {total} in total",
    "first_post": "First post",
    "status": "Status",
    "after_period": "after this period",
    "after_period_mark": " (after this period)",
    "newer_version": "{version} posted by {by}",
    "patches_done": lambda ns, r: f" (patch {r})" if len(ns) == 1 else f" (patches {r})",
    "summary_llm": "AI summary",
    "summary_extractive": "Summary (extractive)",
    "background": "Background",
    "this_week": "This week",
    "source": "source",
    "cites": "cites",
    "fallback": "note",
    "trailers": "Review trailers",
    "no_trailers": "No review trailers yet.",
    "untrailed": lambda ns, r, total: (
        f"Without review trailers: {'patch' if len(ns) == 1 else 'patches'} {r} (of {total})"
    ),
    "mail_list": "Mails",
    "mail_list_plain": "Mails",
    "sender": "from",
    "more_mails": "… and {n} more",
    "patch_mails": lambda n: f"{n} patch {'mail' if n == 1 else 'mails'} (see lore)",
    "late_heading": "Late mail (not counted)",
    "late_line": "Date {date}, received {received} — {reason}",
    "reasons": {
        "dated before the period": "dated before the period",
        "dated after the period": "dated after the period",
        "no usable Date header": "no usable Date header",
    },
    "statuses": {
        "applied": "applied",
        "pulled": "pulled",
        "partially-applied": "partially applied",
        "superseded": "superseded",
        "changes-requested": "changes requested",
        "dropped": "dropped after being applied",
        "idle": "idle — no mail for 90 days",
        "reverted": "reverted after being applied",
        "new": "new — no maintainer decision yet",
    },
    "empty": "No mail in this period.",
    "thread_word": "Thread",
    "in_thread": "One reply per bucket below; *Details* on a card shows its every mail.",
    "chart": "Mails per day and most active series",
    "whole_series": "whole series",
    "none": "none",
}

ZH = {
    "title": "KVMARM 邮件列表周报",
    "title_range": "KVMARM 邮件列表总结报告",
    "period": "分析周期",
    "generated": "生成时间",
    "summaries": "总结方式",
    "totals": "📊 总体统计",
    "mails": "总邮件数",
    "entry_mails": "邮件数",
    "how": "{name}：LLM {llm} 条，抽取式 {extractive} 条",
    "fallbacks": lambda n: f"{n} 条 LLM 总结被替换为抽取式总结（见各条说明）",
    "out_of_time": lambda n: f"LLM 时间预算已用完：{n} 条改用抽取式总结",
    "bots": "其中机器人 {n} 封",
    "threads": "总 Thread 数",
    "series": "补丁系列",
    "series_detail": lambda n, new, versions: f"活跃 {n} 个：新系列 {new} 个，新版本 {versions} 个",
    "participants": "参与者",
    "by_address": "按邮箱地址计",
    "late": "迟到邮件",
    "late_detail": "{n} 封在本周期内收到但 Date 在周期之外（列于文末，不计入统计）",
    "categories": "分类分布",
    "category_line": lambda n, m: f"{n} {'thread' if n == 1 else 'threads'} ({m} 邮件)",
    "entries": "个 thread",
    "top_people": "最活跃的参与者",
    "top_items": "最活跃",
    "entry_heading": "Thread {rank}: {title}",
    "section_count": lambda n: f"共 {n} 个 thread",
    "version": "版本",
    "previous": "上一版",
    "patches": "补丁数",
    "mails_detail": "本周 {week} / 累计 {total}",
    "first_post": "开始时间",
    "status": "状态",
    "after_period": "发生在本周期之后",
    "after_period_mark": "（发生在本周期之后）",
    "newer_version": "{by} 发布了 {version}",
    "patches_done": lambda ns, r: f"（补丁 {r}）",
    "summary_llm": "🤖 AI 总结",
    "summary_extractive": "📋 总结（抽取式）",
    "background": "之前讨论要点",
    "this_week": "本周新讨论中进展",
    "source": "来源",
    "cites": "引用",
    "fallback": "说明",
    "trailers": "审阅标签",
    "no_trailers": "尚无审阅标签。",
    "untrailed": lambda ns, r, total: f"尚无审阅标签的补丁：{r}（共 {total} 个）",
    "mail_list": "📝 邮件列表",
    "mail_list_plain": "邮件列表",
    "sender": "发件人",
    "more_mails": "…… 另有 {n} 封",
    "patch_mails": lambda n: f"补丁邮件 {n} 封（见 lore）",
    "late_heading": "迟到邮件（不计入统计）",
    "late_line": "Date {date}，收到于 {received}（{reason}）",
    "reasons": {
        "dated before the period": "Date 早于本周期",
        "dated after the period": "Date 晚于本周期",
        "no usable Date header": "没有可用的 Date",
    },
    "statuses": {
        "applied": "已合入",
        "pulled": "已进入 pull request",
        "partially-applied": "部分合入",
        "superseded": "已被新版本取代",
        "changes-requested": "需要修改",
        "dropped": "合入后又被撤下",
        "idle": "闲置（90 天无邮件）",
        "reverted": "合入后又被回退",
        "new": "新提交，维护者尚未处理",
    },
    "empty": "本周期内没有邮件。",
    "thread_word": "Thread",
    "in_thread": "各分组详情见本消息的回复；每张卡片的 *详情* 按钮列出全部邮件。",
    "chart": "每日邮件数与最活跃的系列",
    "whole_series": "整个系列",
    "none": "无",
}


def _one_patch_en(total: int, state: str) -> str:
    """ "the patch is reviewed"; of a longer series with one patch on this list, says so."""
    if total > 1:
        return f"the one patch of {total} on this list is {state}"
    return f"the patch is {state}"


def _held_en(held: int, total: int) -> str:
    return f" ({held} of {total} on this list)" if total > held else ""


def _one_patch_zh(total: int, state: str) -> str:
    if total > 1:
        return f"本列表只收到 {total} 个中的 1 个补丁，{state}"
    return f"该补丁{state}"


def _held_zh(held: int, total: int) -> str:
    return f"（本列表收到 {total} 个中的 {held} 个）" if total > held else ""


EN.update(
    {
        "buckets": {
            "applied": "Applied",
            "new_series": "New series",
            "new_versions": "New versions",
            "waiting": "Waiting for review",
            "discussion": "Discussion",
            "reports": "Reports",
        },
        # notification text: "3 applied, 2 new versions, 4 waiting for review"
        "bucket_counts": {
            "applied": "{n} applied",
            "new_series": lambda n: f"{n} new series",
            "new_versions": lambda n: f"{n} new {'version' if n == 1 else 'versions'}",
            "waiting": "{n} waiting for review",
            "discussion": lambda n: f"{n} {'discussion' if n == 1 else 'discussions'}",
            "reports": lambda n: f"{n} {'report' if n == 1 else 'reports'}",
        },
        "overview": "Overview",
        "overview_more": "… {n} more",
        "statuses_extra": {"idle": "idle since {date}", "dropped": "dropped"},
        "mails_n": lambda n: f"{n} {'mail' if n == 1 else 'mails'}",
        "quiet": "no mail this week",
        # review coverage: n unreviewed of the ``held`` patches on the list, of ``total``
        "unreviewed": lambda n, held, total: (
            _one_patch_en(total, "unreviewed")
            if held == 1
            else f"{n} of {held} patches unreviewed" + _held_en(held, total)
        ),
        "all_reviewed": lambda held, total: (
            _one_patch_en(total, "reviewed")
            if held == 1
            else f"all {held} patches reviewed" + _held_en(held, total)
        ),
        "no_reviews": "no review trailers yet",
        "days_waiting": lambda n: f"waiting {n} {'day' if n == 1 else 'days'}",
        "carried": lambda n, total, previous: (
            f"the patch {'carries' if n else 'carries no'} reviews over from {previous}"
            if total == 1
            else f"{n} of {total} carry reviews over from {previous}"
        ),
        "bot_reports": lambda n: f"🤖 {n} bot {'report' if n == 1 else 'reports'} this week",
        "about": "About",
        "about_unknown": "series not known",
        "ai_summary": lambda n: f"AI summary · cites {n} {'mail' if n == 1 else 'mails'}",
        "details": "Details",
        "details_for": "Details",
        "per_patch": "Trailers per patch",
        "no_summary": "",
        "in_bucket_more": "… {n} more in `kvmarm digest --week {week}`",
        "late_count": "{n} late",
        "by": "by",
    }
)
ZH.update(
    {
        "buckets": {
            "applied": "已合入",
            "new_series": "新系列",
            "new_versions": "新版本",
            "waiting": "等待审阅",
            "discussion": "讨论",
            "reports": "报告",
        },
        "bucket_counts": {
            "applied": "合入 {n} 个",
            "new_series": "新系列 {n} 个",
            "new_versions": "新版本 {n} 个",
            "waiting": "待审阅 {n} 个",
            "discussion": "讨论 {n} 个",
            "reports": "报告 {n} 个",
        },
        "overview": "概览",
        "overview_more": "…… 另有 {n} 个",
        "statuses_extra": {"idle": "自 {date} 起无进展", "dropped": "已撤下"},
        "mails_n": lambda n: f"{n} 封邮件",
        "quiet": "本周无邮件",
        "unreviewed": lambda n, held, total: (
            _one_patch_zh(total, "尚无审阅")
            if held == 1
            else f"{held} 个补丁中 {n} 个尚无审阅" + _held_zh(held, total)
        ),
        "all_reviewed": lambda held, total: (
            _one_patch_zh(total, "已审阅")
            if held == 1
            else f"全部 {held} 个补丁已审阅" + _held_zh(held, total)
        ),
        "no_reviews": "尚无审阅标签",
        "days_waiting": lambda n: f"已等待 {n} 天",
        "carried": lambda n, total, previous: (
            f"该补丁{'沿用' if n else '未沿用'} {previous} 的审阅"
            if total == 1
            else f"{total} 个补丁中 {n} 个沿用 {previous} 的审阅"
        ),
        "bot_reports": lambda n: f"🤖 本周机器人报告 {n} 封",
        "about": "相关系列",
        "about_unknown": "未知系列",
        "ai_summary": lambda n: f"AI 总结 · 引用 {n} 封邮件",
        "details": "详情",
        "details_for": "详情",
        "per_patch": "各补丁的审阅标签",
        "no_summary": "",
        "in_bucket_more": "…… 另有 {n} 个，见 `kvmarm digest --week {week}`",
        "late_count": "迟到 {n} 封",
        "by": "",
    }
)


def count_text(t: dict, bucket: str, n: int) -> str:
    """ "3 applied", "2 new versions", "待审阅 4 个"."""
    form = t["bucket_counts"][bucket]
    return form(n) if callable(form) else form.format(n=n)


def state_words(status: dict, t: dict) -> str:
    """A status in words, ``idle since <date>`` included."""
    state = status["state"]
    if state == "idle" and status.get("idle_since"):
        return t["statuses_extra"]["idle"].format(date=status["idle_since"])
    return t["statuses"].get(state) or t["statuses_extra"].get(state) or state


def evidence_words(ev: dict, t: dict) -> list[str]:
    """The parts of one status evidence, unescaped: who and where (a newer version says so)."""
    by = ev.get("by_name") or ev.get("by") or "?"
    where = ev.get("where")
    if where and _VERSION_RE.fullmatch(where):
        return [t["newer_version"].format(version=where, by=by)]
    return [by, where] if where else [by]


def status_words(status: dict, t: dict, *, detail: bool = False) -> str:
    """A status in words; one decided only after the period (every evidence dated after
    it: the model's ``after_period``) says so — a past week's digest shows what is known
    now, never passing it off as the state at the time.  ``detail``: which patches of a
    partially applied version."""
    words = state_words(status, t)
    if detail and status["state"] == "partially-applied" and status.get("patches_done"):
        words += t["patches_done"](status["patches_done"], ranges(status["patches_done"]))
    if status.get("after_period"):
        words += t["after_period_mark"]
    return words


def applied_in_time(entry: dict) -> bool:
    """The entry's version was applied or pulled by the end of the period."""
    status = entry.get("status") or {}
    return status.get("state") in ("applied", "pulled") and not status.get("after_period")


def coverage_words(entry: dict, t: dict) -> str | None:
    """ "3 of 6 patches unreviewed", "all 4 patches reviewed (4 of 5 on this list)", "the
    patch is reviewed" — or
    None: a pull request, no patches, or a version applied by the period end (it does not
    nag about reviews it went in without; ``who_reviewed`` says who reviewed it)."""
    review = entry.get("review")
    if not review or not review["patches"] or entry["type"] == "PULL" or applied_in_time(entry):
        return None
    held = review["patches"]  # patches of the version on this list
    total = max(review.get("total") or held, held)
    left = len(review["unreviewed"])
    if left:
        return t["unreviewed"](left, held, total)
    return t["all_reviewed"](held, total)


def who_reviewed(by: list[dict], escape: Callable[[str], str], *, patches: bool = True) -> str:
    """ "Reviewed-by: Catalin Marinas (3), Shuah Khan (4-6); Acked-by: …" ("" for nobody);
    ``patches=False`` leaves the patch numbers out."""
    kinds: dict[str, list[str]] = {}
    for b in by:
        name = escape(b["name"])
        kinds.setdefault(b["type"], []).append(
            f"{name} ({ranges(b['patches'])})" if patches else name
        )
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())


def status_line(
    status: dict,
    t: dict,
    *,
    escape: Callable[[str], str],
    link: Callable[[str, str], str],
    limit: int | None = None,
) -> tuple[str, list[str]]:
    """A status in words and its evidence, one proof each: who, where, commit, dated link.

    ``escape`` makes mail-derived words safe for the format; ``link(label, url)`` makes a
    link in it.  Shared by the Markdown and Slack renderings so both say the same.  A proof
    dated after the period says so, unless the whole status already does.
    """
    words = status_words(status, t, detail=True)
    proofs = []
    for ev in status["evidence"][:limit]:
        bits = [escape(word) for word in evidence_words(ev, t)]
        if ev["commit"]:
            bits.append(f"`{ev['commit'][:12]}`")
        date = ev["date"][:10] if ev["date"] else "?"
        proof = f"{', '.join(bits)}, {link(date, ev['link'])}"
        if ev["after_period"] and not status.get("after_period"):
            proof += t["after_period_mark"]
        proofs.append(proof)
    return words, proofs


def labels(lang: str) -> dict:
    return ZH if lang == "zh" else EN


def utc_minute(value: str | None) -> str:
    """ "2022-02-07T15:20:29Z" → "2022-02-07 15:20 UTC"."""
    if not value:
        return "?"
    return from_iso(value).strftime("%Y-%m-%d %H:%M UTC")


def utc_short(value: str | None) -> str:
    """ "2022-02-07T15:20:29Z" → "02-07 15:20" (the mail lists; the period says UTC)."""
    if not value:
        return "?"
    return from_iso(value).strftime("%m-%d %H:%M")


def period_text(period: dict) -> str:
    """ "2022-W06: Mon 2022-02-07 00:00 – Mon 2022-02-14 00:00 UTC" (half-open)."""
    since, until = from_iso(period["since"]), from_iso(period["until"])
    span = f"{since:%a %Y-%m-%d %H:%M} – {until:%a %Y-%m-%d %H:%M} UTC"
    return f"{period['iso_week']}: {span}" if period.get("iso_week") else span


def summaries_text(model: dict, t: dict) -> str:
    """ "llm:gpt-4o-mini — 12 by the LLM, 8 extractive" (+ fallbacks when there were any)."""
    counts = model["summaries"]
    text = t["how"].format(
        name=model["summarizer"]["name"], llm=counts["llm"], extractive=counts["extractive"]
    )
    if counts["fallbacks"]:
        text += " · " + t["fallbacks"](counts["fallbacks"])
    if counts.get("out_of_time"):
        text += " · " + t["out_of_time"](counts["out_of_time"])
    return text
