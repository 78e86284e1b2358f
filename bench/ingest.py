"""Ingest speed and memory on the whole shared archive (35 months, 16,654 mails).

Runs, in one process:
1. `kvmarm ingest`'s code path (bot.sync.pipeline.ingest_mails, parallel parsing as the CLI
   chooses) into a fresh database — wall time and peak RSS;
2. the same files again into the same database (re-ingest);
3. the baseline: the same files read with the same reader and parsed bare with the
   standard library (email.message_from_bytes, compat32), reading Subject/From/Date/
   Message-ID and decoding every text part.

Targets (issue "Ingest real kvmarm mail"): ingest ≤ 2.5 × baseline, peak RSS ≤ 300 MB,
re-ingest ≤ 0.3 × first ingest.

    .venv/bin/python bench/ingest.py [ARCHIVE_DIR]
"""

from __future__ import annotations

import email
import email.policy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `ingest` package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bot.sync.pipeline import default_workers, ingest_mails  # noqa: E402
from ingest.sources import count_bytes, iter_raw_mails  # noqa: E402
from storage.db import open_db  # noqa: E402


def archive_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("kvmarm-*.mbox.gz"))
    if not files:
        sys.exit(f"no kvmarm-*.mbox.gz in {folder} (set KVMARM_SHARED_DATA)")
    return files


def mails(files: list[Path]):
    for path in files:
        yield from iter_raw_mails(path)


def bare_parse(files: list[Path]) -> int:
    count = 0
    for mail in mails(files):
        msg = email.message_from_bytes(mail.data, policy=email.policy.compat32)
        for name in ("Subject", "From", "Date", "Message-ID"):
            msg.get(name)
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    try:
                        payload.decode(part.get_content_charset() or "utf-8", "replace")
                    except LookupError:
                        payload.decode("utf-8", "replace")
        count += 1
    return count


def timed(func, *args):
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    default = Path(os.environ.get("KVMARM_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else default / "kvmarm-archive"
    files = archive_files(folder)
    total = sum(count_bytes(p) for p in files)
    workers = default_workers(total)
    for _ in mails(files):  # warm the page cache so both sides read from memory
        pass

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        first, report = timed(lambda: ingest_mails(db, mails(files), workers=workers))
        rss_main, rss_child = peak_mb(resource.RUSAGE_SELF), peak_mb(resource.RUSAGE_CHILDREN)
        again, report2 = timed(lambda: ingest_mails(db, mails(files), workers=workers))
        db_size = (Path(tmp) / "bench.db").stat().st_size / 1e6
        db.close()
    baseline, parsed = timed(bare_parse, files)

    print(f"archive: {len(files)} files, {total / 1e6:.0f} MB, {report.seen} mails")
    print(f"baseline bare parse (stdlib compat32): {baseline:6.2f} s  ({parsed} mails)")
    print(
        f"ingest into a fresh DB ({workers} parse workers): {first:6.2f} s  "
        f"-> {report.added} stored, {report.quarantined} quarantined, "
        f"{report.duplicates} duplicate, DB {db_size:.0f} MB"
    )
    print(f"  ratio ingest / baseline: {first / baseline:5.2f}  (target <= 2.5)")
    print(
        f"  peak RSS: main {rss_main:.0f} MB, largest worker {rss_child:.0f} MB  (target <= 300 MB)"
    )
    print(
        f"re-ingest of the same files: {again:6.2f} s  -> {report2.added} new, "
        f"{report2.duplicates} already stored"
    )
    print(f"  ratio re-ingest / ingest: {again / first:5.2f}  (target <= 0.3)")
    ok = first / baseline <= 2.5 and again / first <= 0.3 and max(rss_main, rss_child) <= 300
    print("all targets met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
