"""The weekly activity chart: mails per day and the most active series, as a PNG.

matplotlib is optional (``pip install kvmarm-bot[chart]``): without it ``render_chart``
returns None and the digest goes out without a picture.  The Agg backend is used, so no
display is needed; the PNG carries no timestamp, so the same model gives the same bytes.
"""

from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)

TOP_SERIES = 8
TITLE_CHARS = 48


def chart_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render_chart(model: dict) -> bytes | None:
    """PNG bytes, or None when matplotlib is missing or there is nothing to draw."""
    days = model["activity"]["per_day"]
    if not days or not model["entries"] or not chart_available():
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    top = model["entries"][:TOP_SERIES]
    fig = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    per_day, per_series = fig.subplots(1, 2, width_ratios=(1, 1.6))
    per_day.bar([d["date"][5:] for d in days], [d["mails"] for d in days], color="#4a76b8")
    per_day.set_title("Mails per day (UTC)")
    per_day.tick_params(axis="x", labelrotation=45, labelsize=8)
    labels = [_short(e["title"]) for e in reversed(top)]
    per_series.barh(labels, [e["mails_this_week"] for e in reversed(top)], color="#e08a2c")
    per_series.set_title("Most active series and threads (mails)")
    per_series.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"kvmarm — {model['period']['key']}")
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def _short(title: str) -> str:
    title = title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"
    return title.replace("$", r"\$")  # no mathtext from a mail subject
