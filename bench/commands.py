"""Handling time of `thread`, `series` and `who reviewed` on the whole archive and on a 10× copy.

"Handling" is what a slash command costs after Slack's request is verified: parse the words,
search, build the answer from the database, render the Block Kit reply.  Measured in one
process on:

1. the whole shared archive (16,654 mails), ingested as `kvmarm ingest` does;
2. a 10× database: the archive ten times over, every copy's Message-IDs renamed
   (``<id@host>`` → ``<id.cN@host>`` in Message-ID, In-Reply-To and References) so each
   copy threads within itself.  Copies keep their subjects and authors, so series chaining by
   author + subject joins them: every series has ten times its versions (a worst case).

Baseline, measured in the same run on the same database: one indexed lookup of a series by
id (``SELECT … FROM series WHERE id = ?``), to tell a slow machine from a slow command.
Targets (issue "The Slack app"): p95 ≤ 50 ms on 1×, ≤ 150 ms on 10×.

    .venv/bin/python bench/commands.py [--archive DIR] [--work DIR] [--rounds N]

``--work`` keeps the databases between runs (the 10× one takes minutes to build).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and could shadow packages.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bot.commands.answers import Sources, answer  # noqa: E402
from bot.commands.grammar import parse_command  # noqa: E402
from bot.slack.blocks import answer_message  # noqa: E402
from bot.sync.pipeline import default_workers, ingest_mails  # noqa: E402
from ingest.sources import RawMail, count_bytes, iter_raw_mails  # noqa: E402
from storage.db import open_db  # noqa: E402

TARGETS_MS = {"1x": 50.0, "10x": 150.0}
KINDS = ("thread", "series", "who reviewed")
_ID_HEADER_RE = re.compile(rb"^(message-id|in-reply-to|references):", re.IGNORECASE)
_ID_RE = re.compile(rb"<([^<>@\s]+)@")


def archive_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("kvmarm-*.mbox.gz"))
    if not files:
        sys.exit(f"no kvmarm-*.mbox.gz in {folder} (set KVMARM_SHARED_DATA)")
    return files


def renamed(data: bytes, copy: int) -> bytes:
    """The mail with every Message-ID in its threading headers renamed for copy ``copy``."""
    head, sep, body = data.partition(b"\n\n")
    out, in_ids = [], False
    for line in head.split(b"\n"):
        if _ID_HEADER_RE.match(line):
            in_ids = True
        elif line[:1] not in (b" ", b"\t"):
            in_ids = False
        if in_ids:
            line = _ID_RE.sub(rb"<\1.c%d@" % copy, line)
        out.append(line)
    return b"\n".join(out) + sep + body


_DATE_RE = re.compile(rb"^Date:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)


def dated_back(data: bytes, years: int) -> bytes:
    """The mail with its Date: header moved ``years`` years earlier (left alone when it
    cannot be read)."""
    head, sep, body = data.partition(b"\n\n")
    match = _DATE_RE.search(head)
    if match is None:
        return data
    try:
        when = parsedate_to_datetime(match.group(1).decode("ascii", "replace").strip())
    except (TypeError, ValueError, IndexError):
        return data
    if when is None or when.year <= years + 1:
        return data
    moved = format_datetime(when - timedelta(days=round(365.25 * years))).encode()
    return head[: match.start(1)] + moved + head[match.end(1) :] + sep + body


def copies(files: list[Path], n: int, *, years_apart: int = 0) -> Iterator[RawMail]:
    """The archive ``n`` times over, Message-IDs renamed per copy; with ``years_apart``,
    copy c is also dated c × years_apart years earlier (an archive spanning decades)."""
    for copy in range(n):
        for path in files:
            for mail in iter_raw_mails(path):
                if copy:
                    data = renamed(mail.data, copy)
                    if years_apart:
                        data = dated_back(data, copy * years_apart)
                    mail = RawMail(data, f"{mail.origin}#c{copy}")
                yield mail


def build(path: Path, files: list[Path], n: int, *, years_apart: int = 0) -> None:
    """The database of ``copies(files, n)`` at ``path``, unless it is there already."""
    if path.exists():
        print(f"  using {path}")
        return
    started = time.perf_counter()
    tmp = path.with_suffix(".part")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    db = open_db(tmp)
    total = n * sum(count_bytes(f) for f in files)
    mails = copies(files, n, years_apart=years_apart)
    report = ingest_mails(db, mails, workers=default_workers(total))
    db.execute("ANALYZE")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    os.replace(tmp, path)
    print(f"  built {path.name}: {report.added} mails in {time.perf_counter() - started:.0f} s")


def queries(db, rng: random.Random) -> dict[str, list[str]]:
    """Realistic words: titles of random series, FEAT_ names, authors, Message-IDs."""
    titles = [r[0] for r in db.execute("SELECT title FROM series WHERE n_versions > 1")]
    authors = [r[0] for r in db.execute("SELECT DISTINCT author_name FROM series")]
    ids = [r[0] for r in db.execute("SELECT key FROM versions")]
    words = rng.sample(titles, 12)
    words += ["FEAT_ECV", "FEAT_CCIDX", "MTE support", "stolen time", "ptp_kvm", "vgic ITS"]
    words += [rng.choice(authors) for _ in range(4)] + [rng.choice(ids) for _ in range(4)]
    words += ["zzqqxx nothing", "stollen tyme"]  # no match: close titles
    return {kind: [f"{kind} {w}" for w in words] for kind in KINDS}


def measure(db, texts: list[str], rounds: int) -> list[float]:
    sources = Sources(db_path="bench")
    times = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            answer_message(answer(db, parse_command(text), sources))
            times.append((time.perf_counter() - started) * 1000)
    return times


def baseline(db, rounds: int) -> float:
    ids = [r[0] for r in db.execute("SELECT id FROM series LIMIT 200")]
    times = []
    for _ in range(rounds):
        for i in ids:
            started = time.perf_counter()
            db.execute("SELECT * FROM series WHERE id = ?", [i]).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_archive = Path(os.environ.get("KVMARM_SHARED_DATA", "../shared/data"))
    parser.add_argument("--archive", type=Path, default=default_archive / "kvmarm-archive")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = archive_files(args.archive)
    work = args.work or Path(tempfile.mkdtemp(prefix="kvmarm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"databases in {work}")
    results: dict[str, dict[str, list[float]]] = {}
    for label, n in (("1x", 1), ("10x", 10)):
        path = work / f"commands-{label}.db"
        build(path, files, n)
        db = open_db(path)
        rng = random.Random(7)
        texts = queries(db, rng)
        for text in texts["thread"][:3]:  # warm the page cache
            answer(db, parse_command(text), Sources())
        base = baseline(db, args.rounds)
        messages = db.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(f"\n{label}: {messages} mails; baseline indexed lookup {base * 1000:.0f} µs")
        print(f"  {'command':<14}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'p95/target':>12}")
        results[label] = {}
        for kind in KINDS:
            times = measure(db, texts[kind], args.rounds)
            results[label][kind] = times
            p50, p95 = percentile(times, 50), percentile(times, 95)
            print(
                f"  {kind:<14}{len(times):>5}{p50:>9.1f}{p95:>9.1f}{p95 / TARGETS_MS[label]:>12.2f}"
            )
        db.close()
    print("\n10x / 1x (p95):")
    for kind in KINDS:
        ratio = percentile(results["10x"][kind], 95) / percentile(results["1x"][kind], 95)
        print(f"  {kind:<14}{ratio:>6.1f}")
    worst = max(
        percentile(results[label][kind], 95) / TARGETS_MS[label]
        for label in results
        for kind in KINDS
    )
    print(f"\nworst p95/target: {worst:.2f} ({'met' if worst <= 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
