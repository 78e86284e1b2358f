"""Why incremental derivation re-derives so much: the mails one month's components touch.

Derivation re-derives every component (ingest/components.py) the new month joins.  This
computes that set for the archive's last month against the rest (1×) and against N simulated
copies of the rest (the copies of bench/incremental.py: Message-IDs and git-send-email runs
renamed, subjects, senders, dates, change-ids and body links kept), with all keys and with
key families left out — the lower bounds a finer design could reach.  It changes nothing.

    .venv/bin/python bench/components.py [--archive DIR] [--copies N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and could shadow packages.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.commands import archive_files, copies  # noqa: E402
from bot.sync.pipeline import ingest_mails  # noqa: E402
from ingest.components import Keys, component_keys, group_components  # noqa: E402
from ingest.records import Message  # noqa: E402
from storage.db import open_db  # noqa: E402
from storage.messages import load_messages  # noqa: E402

Keep = Callable[[str], bool]

VARIANTS: list[tuple[str, Keep]] = [
    ("all keys (what derivation uses)", lambda k: True),
    ("without retitled (rt:)", lambda k: not k.startswith("rt:")),
    ("without pull titles (pt:)", lambda k: not k.startswith("pt:")),
    ("without rt: and pt:", lambda k: not k.startswith(("rt:", "pt:"))),
    ("postings only (id:, send:, mk:)", lambda k: k.startswith(("id:", "send:", "mk:"))),
]


def load(archive: Path) -> tuple[list[Message], list[Message]]:
    """The archive's messages but the last month's, and the last month's."""
    files = archive_files(archive)
    with tempfile.TemporaryDirectory(prefix="kvmarm-components-") as tmp:
        db = open_db(Path(tmp) / "old.db")
        ingest_mails(db, copies(files[:-1], 1), workers=2, rebuild=False)
        old = list(load_messages(db))
        db = open_db(Path(tmp) / "new.db")
        ingest_mails(db, copies(files[-1:], 1), workers=1, rebuild=False)
        new = list(load_messages(db))
    return old, new


def affected(old: list[Message], new: list[Message], n: int, keep: Keep) -> int:
    """Mails in the components the new month touches, ``old`` copied ``n`` times."""
    keys: dict[str, Keys] = {}
    for m in old:
        k = component_keys(m)
        links = {f"id:{link}" for link in m.version_links}
        for c in range(n):
            keys[f"{m.msgid}#{c}"] = Keys(
                frozenset(_renamed(x, c, links) for x in k.strong if keep(x)),
                frozenset(_renamed(x, c, links) for x in k.weak if keep(x)),
            )
    for m in new:
        k = component_keys(m)
        keys[m.msgid] = Keys(
            frozenset(x for x in k.strong if keep(x)), frozenset(x for x in k.weak if keep(x))
        )
    fresh = {m.msgid for m in new}
    return sum(len(g) for g in group_components(keys) if fresh.intersection(g))


def _renamed(key: str, copy: int, links: set[str]) -> str:
    """Copies rename Message-IDs in headers (not links in bodies) and so send runs."""
    if copy and (key.startswith("send:") or (key.startswith("id:") and key not in links)):
        return f"{key}#{copy}"
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_archive = Path(os.environ.get("KVMARM_SHARED_DATA", "../shared/data"))
    parser.add_argument("--archive", type=Path, default=default_archive / "kvmarm-archive")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()
    old, new = load(args.archive)
    print(f"new month: {len(new)} mails; the rest: {len(old)} mails\n")
    print(f"  {'keys':<34}{'1×':>9}{f'{args.copies}×':>9}")
    for label, keep in VARIANTS:
        one = affected(old, new, 1, keep)
        many = affected(old, new, args.copies, keep)
        print(f"  {label:<34}{one:>9}{many:>9}")


if __name__ == "__main__":
    main()
