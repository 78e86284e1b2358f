"""Lore sync speed against a real public-inbox server on 127.0.0.1 (../shared/tools/lore-server).

Runs, in one process, against a server holding the month only (the issue's setup) and
then against one that also holds the month before (so thread context and earlier versions
really add mail):
1. the baseline: the month's window query (``rt:A..B``, the same query the sync sends)
   downloaded with plain HTTP (urllib, ``x=m``, no thread expansion), split, and ingested
   with bot.sync.pipeline.ingest_mails into a fresh database;
2. ``bot.sync.lore.sync`` of the same window into a fresh database (window + thread context +
   earlier-version lookups + ingest), counting HTTP requests;
3. a no-op sync (the next run from the high-water mark): requests and time.

Each is run ``--runs`` times (default 3); medians are printed.  Targets (issue "Pull from
lore with b4/liblore"): sync ≤ 1.5 × (download + ingest); a no-op sync ≤ 2 requests.

    .venv/bin/python bench/sync.py [--month 2022-01] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `ingest` package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bot.config import load_config  # noqa: E402
from bot.sync.lore import sync  # noqa: E402
from bot.sync.pipeline import default_workers, ingest_mails  # noqa: E402
from ingest.lore.client import LoreClient, received_query  # noqa: E402
from ingest.sources import RawMail, split_mbox, unescape_mbox  # noqa: E402
from storage.db import open_db  # noqa: E402

_MBOXRD = re.compile(rb"^>(>*From )", re.MULTILINE)


def shared_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("KVMARM_SHARED_DATA", default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def month_start(month: str) -> datetime:
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def previous_month(month: str) -> str:
    return (month_start(month) - timedelta(days=1)).strftime("%Y-%m")


def lore_server(args: list[str]) -> None:
    script = shared_dir().parent / "tools" / "lore-server"
    done = subprocess.run(["bash", str(script), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"lore-server {args[0]} failed:\n{done.stderr}")


def baseline(url: str, since: datetime, until: datetime, db_path: Path) -> tuple[float, float]:
    """Plain-HTTP download of the window query, then ingest: (download s, ingest s)."""
    started = time.perf_counter()
    query = urllib.parse.quote_plus(received_query(since, until))
    request = urllib.request.Request(f"{url}/?x=m&q={query}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=300) as answer:
        mbox = gzip.decompress(answer.read())
    downloaded = time.perf_counter()
    mails = [RawMail(unescape_mbox(m, _MBOXRD), f"#{i}") for i, m in enumerate(split_mbox([mbox]))]
    db = open_db(db_path)
    ingest_mails(db, mails, workers=default_workers(sum(len(m.data) for m in mails)))
    db.close()
    return downloaded - started, time.perf_counter() - downloaded


def timed_sync(url: str, since: datetime | None, until: datetime, db_path: Path):
    db = open_db(db_path)
    config = load_config({"KVMARM_LORE_URL": url}, db=str(db_path))
    with LoreClient(url) as client:
        started = time.perf_counter()
        report = sync(db, config, since=since, client=client, now=until)
        seconds = time.perf_counter() - started
    db.close()
    return seconds, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", default="2022-01", help="archive month to sync (YYYY-MM)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    archive = shared_dir() / "kvmarm-archive"
    month = archive / f"kvmarm-{args.month}.mbox.gz"
    before = archive / f"kvmarm-{previous_month(args.month)}.mbox.gz"
    for path in (month, before):
        if not path.exists():
            sys.exit(f"{path} not found (set KVMARM_SHARED_DATA)")
    scenarios = [
        ("server holds the month only", [month]),
        (f"server also holds {previous_month(args.month)}", [before, month]),
    ]
    print(f"sync of {args.month} from public-inbox-httpd on 127.0.0.1, median of {args.runs} runs")
    for title, inputs in scenarios:
        print(f"\n== {title}")
        report(measure(args, inputs))


def measure(args: argparse.Namespace, inputs: list[Path]) -> list[dict]:
    since = month_start(args.month)
    until = (since + timedelta(days=32)).replace(day=1) + timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        server_dir, port = Path(tmp) / "lore", free_port()
        lore_server(["start", str(server_dir), str(port), *map(str, inputs)])
        url = f"http://127.0.0.1:{port}/kvmarm"
        try:
            return [run_once(url, since, until, Path(tmp), n) for n in range(args.runs)]
        finally:
            lore_server(["stop", str(server_dir)])


def run_once(url: str, since: datetime, until: datetime, tmp: Path, n: int) -> dict:
    download, ingest = baseline(url, since, until, tmp / f"base-{n}.db")
    sync_s, first = timed_sync(url, since, until, tmp / f"sync-{n}.db")
    noop_s, noop = timed_sync(url, None, until, tmp / f"sync-{n}.db")
    return {
        "download": download,
        "ingest": ingest,
        "sync": sync_s,
        "first": first,
        "noop": noop_s,
        "noop_report": noop,
    }


def report(rows: list[dict]) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    first, noop = rows[-1]["first"], rows[-1]["noop_report"]
    base = median("download") + median("ingest")
    print(
        f"baseline: x=m download {median('download'):.2f} s + ingest {median('ingest'):.2f} s"
        f" = {base:.2f} s for {first.window} messages"
    )
    print(
        f"sync:     {median('sync'):.2f} s, {first.requests} requests, {first.fetched} messages"
        f" fetched ({first.window} window, {first.context_threads} threads for context,"
        f" {first.earlier_lookups} series looked up for earlier versions,"
        f" {first.earlier_found} found), {first.ingest.added} stored"
    )
    extra = first.ingest.added / first.window if first.window else 1.0
    print(
        f"ratio:    sync / (download + ingest) = {median('sync') / base:.2f}  (target ≤ 1.5);"
        f" per message stored: {median('sync') / base / extra:.2f}"
    )
    print(
        f"no-op:    {median('noop'):.2f} s, {noop.requests} requests (target ≤ 2),"
        f" {noop.window} messages in the overlap, {noop.ingest.added} stored"
    )


if __name__ == "__main__":
    main()
