"""Keeping the facts current costs what the new mail costs, not what the database holds.

One month (the archive's last, 2022-02) is ingested — stored and derived, as `kvmarm ingest`
does — into:
1. an empty database;
2. the rest of the archive (1×: 34 months);
3. the rest of the archive ten times over (10×: every copy's Message-IDs renamed as in
   bench/commands.py, so each copy threads within itself; subjects and authors are kept, so
   series chaining joins the copies — a worst case for incremental derivation).
Each run is a child process on a fresh copy of the database: wall time and its peak RSS.
The same runs with a full derivation after the ingest (what every ingest did before) give
the comparison.  Then the same month again into the 10× database: nothing new, so nothing
is derived.

Targets (issue 9): 10× ≤ 2 × empty, peak RSS ≤ 250 MB; a run with nothing new derives
nothing.

    .venv/bin/python bench/incremental.py [--archive DIR] [--work DIR] [--copies N]

``--work`` keeps the base databases between runs (the 10× one takes many minutes to build).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and could shadow packages.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.commands import archive_files, copies  # noqa: E402
from bot.sync.pipeline import (  # noqa: E402
    default_workers,
    facts_out_of_date,
    ingest_mails,
    rebuild_derived,
)
from ingest.sources import count_bytes, iter_raw_mails  # noqa: E402
from storage.db import open_db  # noqa: E402

TARGET_RATIO = 2.0
TARGET_RSS_MB = 250


def build(path: Path, files: list[Path], n: int) -> None:
    if path.exists():
        db = open_db(path)
        if facts_out_of_date(db):  # derived by other rules: not what is being measured
            rebuild_derived(db, full=True)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        print(f"  using {path}")
        return
    started = time.perf_counter()
    tmp = path.with_suffix(".part")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    db = open_db(tmp)
    total = n * sum(count_bytes(f) for f in files)
    report = ingest_mails(db, copies(files, n), workers=default_workers(total))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    os.replace(tmp, path)
    print(f"  built {path.name}: {report.added} mails in {time.perf_counter() - started:.0f} s")


def child(db_path: str, month: str, how: str) -> None:
    """One measured run: ingest the month into the database, print the figures as JSON.
    ``how`` = "full": derive everything afterwards instead (what every ingest used to do)."""
    started = time.perf_counter()
    db = open_db(db_path)
    full = how == "full"
    report = ingest_mails(db, iter_raw_mails(Path(month)), rebuild=not full)
    if full:
        report.derived = rebuild_derived(db, full=True)
    db.close()
    seconds = time.perf_counter() - started
    rss_mb = peak_rss_mb()
    print(
        json.dumps(
            {"seconds": seconds, "rss_mb": rss_mb, **report.as_dict(), "derived": report.derived}
        )
    )


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec from the
    parent that built the big databases)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(base: Path | None, month: Path, work: Path, how: str = "incremental") -> dict:
    target = work / "run.db"
    for stale in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        stale.unlink(missing_ok=True)
    if base is not None:
        shutil.copy(base, target)
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(target), str(month), how],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stored"] = open_db(target).execute("SELECT count(*) FROM messages").fetchone()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_archive = Path(os.environ.get("KVMARM_SHARED_DATA", "../shared/data"))
    parser.add_argument("--archive", type=Path, default=default_archive / "kvmarm-archive")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    files = archive_files(args.archive)
    rest, month = files[:-1], files[-1]
    work = args.work or Path(tempfile.mkdtemp(prefix="kvmarm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"databases in {work}; the new month: {month.name}")
    one = work / "incremental-1x.db"
    many = work / f"incremental-{args.copies}x.db"
    build(one, rest, 1)
    build(many, rest, args.copies)
    rows = [
        ("empty", measure(None, month, work)),
        ("1x", measure(one, month, work)),
        (f"{args.copies}x", measure(many, month, work)),
        ("1x full", measure(one, month, work, "full")),
        (f"{args.copies}x full", measure(many, month, work, "full")),
    ]
    print(
        f"\n  {'into':<7}{'stored':>9}{'added':>7}{'derived':>9}{'s':>7}{'ratio':>7}{'RSS MB':>8}"
    )
    base = rows[0][1]["seconds"]
    for label, r in rows:
        ratio = r["seconds"] / base
        print(
            f"  {label:<10}{r['stored']:>9}{r['added']:>7}{r['derived']:>9}"
            f"{r['seconds']:>7.2f}{ratio:>7.2f}{r['rss_mb']:>8.0f}"
        )
    again = work / "again.db"
    shutil.copy(work / "run.db", again)  # the 10x database with the month: nothing new
    second = measure(again, month, work)
    print(
        f"\n  the same month again into {args.copies}x: {second['added']} added, "
        f"{second['derived']} derived, {second['seconds']:.2f} s"
    )
    ratio = rows[2][1]["seconds"] / base
    rss = max(r["rss_mb"] for _label, r in rows[:3])
    met = ratio <= TARGET_RATIO and rss <= TARGET_RSS_MB and second["derived"] == 0
    print(
        f"\n{args.copies}x / empty: {ratio:.2f} (target ≤ {TARGET_RATIO}); peak RSS {rss:.0f} MB "
        f"(target ≤ {TARGET_RSS_MB}); {'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
