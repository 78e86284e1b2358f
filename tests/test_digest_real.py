"""One real week of the shared archive (2022-W06): golden Markdown (en, zh) and Block Kit
JSON, and totals checked against an independent count over the same mbox files.

Regenerate the golden files on purpose only:  KVMARM_REGEN_GOLDEN=1 pytest tests/test_digest_real.py
"""

from __future__ import annotations

import difflib
import email
import email.parser
import email.utils
import gzip
import json
import mailbox
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.digest import build_digest, period_for_week, render_markdown, render_slack
from bot.digest.buckets import BUCKETS
from bot.digest.render_slack import (
    PARENT_BLOCKS,
    PARENT_CHARS,
    REPLY_BLOCKS,
    REPLY_CHARS,
    message_chars,
)
from storage.messages import iso
from storage.queue import waiting_versions
from tests.archive import stored_raw
from tests.digest_support import REAL_NOW, REAL_WEEK, archive_files
from tests.shared import shared_data_dir
from tests.test_digest_slack import assert_within_limits, raw_mentions

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("KVMARM_REGEN_GOLDEN") == "1"

pytestmark = [pytest.mark.shared, pytest.mark.slow]


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return archive_files(shared_data_dir())


@pytest.fixture(scope="module")
def models(archive_db):
    period = period_for_week(REAL_WEEK)
    return {
        lang: build_digest(archive_db, period, lang=lang, now=REAL_NOW) for lang in ("en", "zh")
    }


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run with KVMARM_REGEN_GOLDEN=1 once"
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "golden", "actual", lineterm="", n=2
        )
        pytest.fail(
            f"{name} differs from the golden file (KVMARM_REGEN_GOLDEN=1 to accept):\n"
            + "\n".join(list(diff)[:80])
        )


def test_golden_markdown_en(models):
    check_golden(f"digest-{REAL_WEEK}.en.md", render_markdown(models["en"], "en"))


def test_golden_markdown_zh(models):
    check_golden(f"digest-{REAL_WEEK}.zh.md", render_markdown(models["zh"], "zh"))


def test_golden_block_kit(models):
    messages = render_slack(models["en"])
    assert_within_limits(messages)
    assert raw_mentions(messages) == []
    check_golden(
        f"digest-{REAL_WEEK}.slack.json", json.dumps(messages, indent=1, ensure_ascii=False) + "\n"
    )


def test_rebuilding_the_week_gives_the_same_model(archive_db, models):
    again = build_digest(archive_db, period_for_week(REAL_WEEK), lang="en", now=REAL_NOW)
    assert json.dumps(again, sort_keys=True) == json.dumps(models["en"], sort_keys=True)


# ---- an independent count over the same mbox files (email + mailbox, nothing of ours) ------

_BOT_RE = re.compile(r"^(lkp|syzbot|pr-tracker-bot|patchwork-bot|sashiko)|robot|-bot@", re.I)


def independent_count(files: list[Path], since: datetime, until: datetime, workdir: Path) -> dict:
    """Mails dated (UTC) in [since, until): distinct Message-IDs, senders by address."""
    dates: dict[str, datetime] = {}
    senders: dict[str, str] = {}
    headers = email.parser.BytesHeaderParser()
    for path in files:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
        tmp = workdir / path.with_suffix("").name  # kvmarm-2022-01.mbox
        tmp.write_bytes(raw)
        box = mailbox.mbox(tmp)
        for key in box.iterkeys():
            msg = headers.parsebytes(box.get_bytes(key))
            msgid = (msg.get("Message-ID") or "").strip().strip("<>").strip()
            if not msgid or msgid in dates:
                continue
            try:
                when = email.utils.parsedate_to_datetime(str(msg.get("Date")))
            except (TypeError, ValueError):
                continue
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            dates[msgid] = when
            senders[msgid] = email.utils.parseaddr(str(msg.get("From")))[1].lower()
        box.close()
        tmp.unlink()
    inside = [m for m, when in dates.items() if since <= when < until]
    people = {senders[m] for m in inside if not _BOT_RE.search(senders[m])}
    per_day = Counter(dates[m].date().isoformat() for m in inside)
    return {"mails": len(inside), "participants": len(people), "per_day": per_day}


def test_totals_match_an_independent_count(files, models, tmp_path):
    period = period_for_week(REAL_WEEK)
    counted = independent_count(files, period.since, period.until, tmp_path)
    totals = models["en"]["totals"]
    assert totals["mails"] == counted["mails"] == 151
    assert totals["participants"] == counted["participants"]
    per_day = {d["date"]: d["mails"] for d in models["en"]["activity"]["per_day"]}
    assert per_day == {day: counted["per_day"].get(day, 0) for day in per_day}
    assert sum(e["mails_this_week"] for e in models["en"]["entries"]) == totals["mails"]


def test_every_listed_trailer_is_in_the_mail_that_gave_it(archive_db, models):
    """Each Reviewed/Acked/Tested-by in the digest, read back from the raw mail it cites:
    an unquoted ``Kind: … <address>`` line must be there."""
    checked = 0
    for entry in models["en"]["entries"]:
        for patch in entry["trailers"]:
            for t in patch["trailers"]:
                text = _text_parts(stored_raw(archive_db, t["msgid"]))
                line = re.compile(
                    rf"^[ \t]*{re.escape(t['type'])}[ \t]*:[^\n]*{re.escape(t['email'])}",
                    re.I | re.M,
                )
                assert line.search(text), (entry["title"], patch["n"], t)
                checked += 1
    assert checked >= 90  # 93 in this week


def _text_parts(raw: bytes) -> str:
    """The decoded text/* parts of a mail, joined (quotes included)."""
    texts = []
    for part in email.message_from_bytes(raw).walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes), part.get_content_type()
            texts.append(payload.decode("utf-8", "replace"))
    return "".join(texts)


# ---- buckets and sizes on real weeks ---------------------------------------------------------

BUSIEST = "2022-W04"  # the busiest ISO week of the archive by mail (bench/digest.py)


@pytest.fixture(scope="module")
def busiest(archive_db):
    return build_digest(archive_db, period_for_week(BUSIEST), lang="en", now=REAL_NOW)


def test_busiest_week_fits_slack(busiest):
    messages = render_slack(busiest)
    assert_within_limits(messages)
    assert raw_mentions(messages) == []
    parent, *replies = messages
    assert len(parent["blocks"]) <= PARENT_BLOCKS and message_chars(parent) <= PARENT_CHARS
    assert 1 <= len(replies) <= 7
    shown = [name for name in BUCKETS if busiest["buckets"][name]]
    assert len(replies) == len(shown)
    by_key = {e["key"]: e for e in busiest["entries"]}
    for name, reply in zip(shown, replies, strict=True):
        assert len(reply["blocks"]) <= REPLY_BLOCKS and message_chars(reply) <= REPLY_CHARS
        assert reply["blocks"][1]["text"]["text"].startswith("*1. <")  # numbering restarts
        text = json.dumps(reply, ensure_ascii=False)
        entries = [by_key[k] for k in busiest["buckets"][name]]
        assert len(entries) >= 1
        listed = [e for e in entries if e["link"] in text]
        counted = re.search(r"… (\d+) more in", text)
        assert len(listed) + (int(counted.group(1)) if counted else 0) == len(entries)
    sizes = [(len(m["blocks"]), message_chars(m)) for m in messages]
    print(f"\n{BUSIEST}: parent + {len(replies)} replies, (blocks, characters): {sizes}")


@pytest.mark.parametrize("week", ["2021-W40", "2022-W04", REAL_WEEK])
def test_buckets_hold_the_facts_as_of_the_period_end(archive_db, week):
    period = period_for_week(week)
    model = build_digest(archive_db, period, lang="en", now=REAL_NOW)
    listed = Counter(k for keys in model["buckets"].values() for k in keys)
    assert len(listed) == len(model["entries"]) >= 5 and max(listed.values()) == 1
    until = iso(period.until)
    queue = {w.series_id for w in waiting_versions(archive_db, period.until)}
    ninety = iso(period.until - timedelta(days=90))
    checked = 0
    for e in model["entries"]:
        if e["bucket"] == "applied":
            done = [v for v in e["status"]["evidence"] if v["date"] and v["date"] < until]
            assert any(iso(period.since) <= v["date"] for v in done), e["title"]
        elif e["bucket"] == "waiting":
            assert e["id"] in queue
        elif e["bucket"] == "new_series":
            assert e["versions"][0]["in_period"]
        if e["kind"] == "series" and e["status"]["state"] == "new":
            (last,) = archive_db.execute(
                "SELECT max(g.date) FROM memberships m JOIN messages g ON g.msgid = m.msgid "
                "WHERE m.version_key = ? AND g.date < ?",
                [e["version"]["key"], until],
            ).fetchone()
            assert last >= ninety, (e["title"], last)  # never "new" when idle for 90 days
            checked += 1
    assert checked >= 1
