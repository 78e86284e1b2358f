"""Keeping the facts current costs what the new mail costs, not what the database holds.

One month (the archive's last, 2022-02) is ingested — stored and derived, as `kvmarm ingest`
does — into:
1. an empty database;
2. the rest of the archive (1×: 34 months);
3. the rest of the archive ten times over, as ten decades of kvmarm would be ("10x
   decades"): every copy's Message-IDs renamed as in bench/commands.py, and copy c dated
   3·c years earlier, so the copies are thirty years of mail by the same people;
4. the same, every copy on the archive's own dates ("10x same dates"): a worst case —
   every series has ten copies of each version on the same days, so all of them chain
   into one series and numbered patches sent without threading headers by one sender
   join across copies.
Each run is a child process on a fresh copy of the database (flushed to disk before the
run, so the run does not pay for writing out the copy): wall time and its peak RSS.  The
same runs with a full derivation after the ingest (what every ingest did before) give the
comparison.  Then the same month again into the 10× database: nothing new, nothing derived.

Targets (issue 9): 10× ≤ 2 × empty, peak RSS ≤ 250 MB; a run with nothing new derives
nothing.

    .venv/bin/python bench/incremental.py [--archive DIR] [--work DIR] [--copies N]

``--work`` keeps the base databases between runs (the 10× ones take minutes to build).
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

from bench.commands import archive_files, build  # noqa: E402
from bot.sync.pipeline import (  # noqa: E402
    facts_out_of_date,
    ingest_mails,
    rebuild_derived,
)
from ingest.sources import iter_raw_mails  # noqa: E402
from storage.db import open_db  # noqa: E402

TARGET_RATIO = 2.0
YEARS_APART = 3  # the archive spans 35 months: copies 3 years apart do not overlap
TARGET_RSS_MB = 250


def prepare(path: Path, files: list[Path], n: int, *, years_apart: int = 0) -> None:
    """Build the base database (bench/commands.py), or bring one kept by an earlier run up
    to this version's rules."""
    if path.exists():
        db = open_db(path)
        if facts_out_of_date(db):  # derived by other rules: not what is being measured
            rebuild_derived(db, full=True)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    build(path, files, n, years_apart=years_apart)


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
        os.sync()  # the copy's dirty pages would otherwise be flushed by the run's commit
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
    parser.add_argument("--rounds", type=int, default=3)
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
    n = args.copies
    bases = {
        "1x": work / "incremental-1x.db",
        f"{n}x decades": work / f"incremental-{n}x-decades.db",
        f"{n}x same dates": work / f"incremental-{n}x.db",
    }
    prepare(bases["1x"], rest, 1)
    prepare(bases[f"{n}x decades"], rest, n, years_apart=YEARS_APART)
    prepare(bases[f"{n}x same dates"], rest, n)
    # Interleaved and repeated (median): these machines are noisy.
    runs: dict[str, list[dict]] = {"empty": [], **{label: [] for label in bases}}
    for _round in range(args.rounds):
        runs["empty"].append(measure(None, month, work))
        for label, base in bases.items():
            runs[label].append(measure(base, month, work))
    rows = [(label, _median(results)) for label, results in runs.items()]
    rows += [
        (f"{label} full", measure(base, month, work, "full"))
        for label, base in bases.items()
        if label != "1x"
    ]
    print(
        f"\n  {'into':<16}{'stored':>9}{'added':>7}{'derived':>9}{'s':>7}{'ratio':>7}{'RSS MB':>8}"
    )
    base_s = rows[0][1]["seconds"]
    for label, r in rows:
        print(
            f"  {label:<16}{r['stored']:>9}{r['added']:>7}{r['derived']:>9}"
            f"{r['seconds']:>7.2f}{r['seconds'] / base_s:>7.2f}{r['rss_mb']:>8.0f}"
        )
    again = work / "again.db"
    shutil.copy(bases[f"{n}x decades"], again)
    measure(again, month, work)  # the month stored and derived: run.db, then again
    shutil.copy(work / "run.db", again)
    second = measure(again, month, work)
    print(
        f"\n  the same month again into {n}x: {second['added']} added, "
        f"{second['derived']} derived, {second['seconds']:.2f} s"
    )
    for label in (f"{n}x decades", f"{n}x same dates"):
        r = dict(rows)[label]
        ratio = r["seconds"] / base_s
        met = ratio <= TARGET_RATIO and r["rss_mb"] <= TARGET_RSS_MB and second["derived"] == 0
        print(
            f"{label} / empty: {ratio:.2f} (target ≤ {TARGET_RATIO}); peak RSS "
            f"{r['rss_mb']:.0f} MB (target ≤ {TARGET_RSS_MB}); {'met' if met else 'MISSED'}"
        )


def _median(results: list[dict]) -> dict:
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


if __name__ == "__main__":
    main()
