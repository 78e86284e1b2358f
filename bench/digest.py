"""Digest speed and LLM prompt size on the busiest ISO week of the shared archive.

In one process, on a database holding the whole archive (built here unless ``--db`` names
one):
1. baseline: the machine-readable views of the same week (``series_json`` + ``threads_json``,
   what a script would read to make a digest by hand);
2. the digest with the extractive summariser, cache emptied first (cold) and again (warm):
   model + Markdown (en) + Block Kit.  Target: cold ≤ 2 s;
3. the digest with the LLM summariser against the fake OpenAI-compatible server on 127.0.0.1
   (tests/fake_openai.py: it counts tokens as characters / 4, for prompts and for the
   baseline alike), cache emptied first: input tokens vs the raw text of the week's mails.
   Target: ≤ 25 %.  A second run must send 0 requests.

    .venv/bin/python bench/digest.py [--db PATH] [--week 2022-W04] [--runs 3]
"""

from __future__ import annotations

import argparse
import email
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: put the repository root there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bot.config import load_config  # noqa: E402
from bot.digest import period_for_week, render_markdown, render_slack  # noqa: E402
from bot.digest.extractive import ExtractiveSummariser  # noqa: E402
from bot.digest.llm import OpenAISummariser, make_openai_client  # noqa: E402
from bot.digest.model import run_digest  # noqa: E402
from bot.digest.period import iso_week_of  # noqa: E402
from storage import digests as store  # noqa: E402
from storage.db import open_db  # noqa: E402
from storage.messages import from_iso, get_raw  # noqa: E402
from storage.views import series_json, threads_json  # noqa: E402
from tests.digest_support import archive_files, ingest_files  # noqa: E402
from tests.fake_openai import FakeOpenAI, estimate_tokens  # noqa: E402
from tests.shared import _DEFAULT as SHARED_DEFAULT  # noqa: E402

NOW = datetime(2022, 3, 1, 8, 0, tzinfo=UTC)


def busiest_week(db) -> str:
    weeks = Counter(
        iso_week_of(from_iso(d))
        for (d,) in db.execute("SELECT date FROM messages WHERE date IS NOT NULL")
    )
    return weeks.most_common(1)[0][0]


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def raw_text(db, msgids: list[str]) -> tuple[int, int]:
    """(bytes as received, characters of decoded text parts incl. quotes and diffs)."""
    size = chars = 0
    for msgid in msgids:
        raw = get_raw(db, msgid) or b""
        size += len(raw)
        for part in email.message_from_bytes(raw).walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True) or b""
                chars += len(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return size, chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="an ingested database (default: build one from the archive)")
    parser.add_argument("--week", help="ISO week (default: the busiest in the database)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    if args.db:
        run_bench(open_db(args.db), args)
        return
    shared = Path(os.environ.get("KVMARM_SHARED_DATA", SHARED_DEFAULT))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        db = ingest_files(Path(tmp) / "bench.db", archive_files(shared), workers=4)
        print(f"ingested the archive in {time.perf_counter() - started:.1f} s")
        run_bench(db, args)
        db.close()


def run_bench(db, args) -> None:
    week = args.week or busiest_week(db)
    period = period_for_week(week)

    base, _ = timed(
        lambda: (
            series_json(db, period.since, period.until),
            threads_json(db, period.since, period.until),
        ),
        args.runs,
    )

    def extractive() -> dict:
        run = run_digest(db, period, summariser=ExtractiveSummariser(), now=NOW)
        render_markdown(run.model, "en")
        render_slack(run.model)
        return run.model

    def cold() -> dict:
        store.forget_summaries(db, period.key)
        return extractive()

    cold_s, model = timed(cold, args.runs)
    warm_s, _ = timed(extractive, args.runs)
    totals = model["totals"]
    n, entries, people = totals["mails"], totals["entries"], totals["participants"]
    print(f"week {week}: {n} mails, {entries} entries, {people} participants")
    print(f"baseline (series_json + threads_json): {base:.3f} s")
    verdict = "ok" if cold_s <= 2 else "MISSED"
    print(f"digest, extractive, cold cache:  {cold_s:.3f} s  ({cold_s / base:.1f}x baseline)")
    print(f"  target <= 2 s: {verdict}")
    print(f"digest, extractive, warm cache:  {warm_s:.3f} s  ({warm_s / base:.1f}x baseline)")

    msgids = [m["msgid"] for e in model["entries"] for m in e["mails"]]
    raw_bytes, text_chars = raw_text(db, msgids)
    with FakeOpenAI() as server:
        config = load_config(
            {
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "bench",
                "KVMARM_CONFIG": "/dev/null",
            }
        )
        summariser = OpenAISummariser(make_openai_client(config), "bench-model")
        store.forget_summaries(db, period.key)
        started = time.perf_counter()
        first = run_digest(db, period, summariser=summariser, now=NOW)
        llm_s = time.perf_counter() - started
        requests = len(server.requests)
        server.reset()
        run_digest(db, period, summariser=summariser, now=NOW)
        again = len(server.requests)
    stats = first.stats
    raw_tokens, text_tokens = raw_bytes // 4, estimate_tokens("x" * text_chars)
    small = first.model["summaries"]["extractive"]
    print(f"LLM: {requests} requests for {entries} entries ({small} too small to ask)")
    print(f"  {llm_s:.2f} s against the fake server")
    print(f"raw mails as received: {raw_bytes} bytes (~{raw_tokens} tokens)")
    print(f"their decoded text incl. quotes/diffs: {text_chars} chars (~{text_tokens} tokens)")
    share_raw = 100 * stats.prompt_tokens / raw_tokens
    share_text = 100 * stats.prompt_tokens / text_tokens
    verdict = "ok" if share_text <= 25 else "MISSED"
    print(f"LLM input: {stats.prompt_tokens} tokens = {share_raw:.1f} % of the raw mails,")
    print(f"  {share_text:.1f} % of their decoded text  target <= 25 %: {verdict}")
    print(f"second LLM run: {again} requests (cache)")


if __name__ == "__main__":
    main()
