"""The weekly chart, as a PNG: mails per day (top) and, per active series, its patches
reviewed vs. not yet reviewed (bottom) — the review queue at a glance.

Drawn to be read at Slack's preview size (a few hundred pixels wide): two stacked panels,
large type, short labels, at most ``TOP_SERIES`` series.  matplotlib is optional (``pip
install kvmarm-bot[chart]``): without it ``render_chart`` returns None and the digest goes
out without a picture.  The Agg backend is used, so no display is needed; the PNG carries
no timestamp, so the same model gives the same bytes.
"""

from __future__ import annotations

import io
import logging

from bot.digest.labels import applied_in_time

log = logging.getLogger(__name__)

TOP_SERIES = 8
TITLE_CHARS = 26
REVIEWED = "#3f9c4a"
UNREVIEWED = "#d9822b"
MAILS = "#4a76b8"


def chart_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def review_rows(model: dict) -> list[tuple[str, int, int]]:
    """(label, reviewed, not yet reviewed) per active series with patches, the most
    unreviewed first: series with mail this period or waiting for review (not those applied
    by the period end: their review queue is closed)."""
    rows = []
    for e in model["entries"]:
        review = e.get("review")
        if e["kind"] != "series" or e["type"] == "PULL" or not review or not review["patches"]:
            continue
        if applied_in_time(e):
            continue
        if not e["mails_this_week"] and e.get("bucket") != "waiting":
            continue
        label = f"v{e['version']['number']} {_short(e['title'])}"
        rows.append((label, review["reviewed"], len(review["unreviewed"]), e["mails_this_week"]))
    rows.sort(key=lambda r: (-r[3], -r[2], r[0]))
    return [(label, done, left) for label, done, left, _m in rows[:TOP_SERIES]]


def render_chart(model: dict) -> bytes | None:
    """PNG bytes, or None when matplotlib is missing or there is nothing to draw."""
    days = model["activity"]["per_day"]
    if not days or not model["entries"] or not chart_available():
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = review_rows(model)
    top, bottom = 3.0, (0.5 * len(rows) + 0.9 if rows else 0)
    fig = Figure(figsize=(7, top + bottom + 0.5), dpi=100, layout="constrained")
    fig.suptitle(f"kvmarm — {model['period']['key']}", fontsize=20, fontweight="bold")
    if rows:
        parts = fig.subfigures(2, 1, height_ratios=(top, bottom))
        upper, lower = parts[0], parts[1]  # type: ignore[index]  # 2 rows: an array
        _mails_per_day(upper.subplots(), days)
        lower.suptitle("Patches per series: reviewed / not yet", fontsize=17, x=0.02, ha="left")
        _review_bars(lower.subplots(), rows)
    else:
        _mails_per_day(fig.subplots(), days)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _mails_per_day(ax, days: list[dict]) -> None:
    labels = [d["date"][5:] for d in days]
    counts = [d["mails"] for d in days]
    bars = ax.bar(labels, counts, color=MAILS)
    ax.bar_label(bars, fontsize=14)
    ax.set_title("Mails per day (UTC)", fontsize=17, loc="left")
    ax.tick_params(axis="both", labelsize=14)
    ax.margins(y=0.2)
    ax.spines[["top", "right"]].set_visible(False)


def _review_bars(ax, rows: list[tuple[str, int, int]]) -> None:
    rows = list(reversed(rows))
    labels = [r[0] for r in rows]
    done = [r[1] for r in rows]
    left = [r[2] for r in rows]
    ax.barh(labels, done, color=REVIEWED, label="reviewed")
    bars = ax.barh(labels, left, left=done, color=UNREVIEWED, label="not yet reviewed")
    ax.bar_label(
        bars,
        labels=[f"{d}/{d + n}" for d, n in zip(done, left, strict=True)],
        padding=3,
        fontsize=14,
    )
    ax.tick_params(axis="y", labelsize=14)
    ax.tick_params(axis="x", labelsize=12)
    ax.margins(x=0.22)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=13, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def _short(title: str) -> str:
    title = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
    return title.replace("$", r"\$")  # no mathtext from a mail subject
