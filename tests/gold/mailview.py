"""Read the shared kvmarm archive the way a labeller needs to, without kvmarm-bot's rules.

    python -m tests.gold.mailview show MSGID        # one mail: headers and its whole text
    python -m tests.gold.mailview thread MSGID      # the thread around it, as a tree
    python -m tests.gold.mailview posting MSGID     # the patches sent with it (n/N, files)
    python -m tests.gold.mailview find WORDS...     # subjects containing all the words
    python -m tests.gold.mailview by ADDRESS        # postings (non-replies) by a sender
    python -m tests.gold.mailview grep REGEX        # mails whose own (unquoted) text matches

Everything here comes from the standard library's mail parser and plain string handling.
"""

from __future__ import annotations

import re
import sys

from tests.gold.mailindex import Mail, children_of, load_index, thread_of, thread_root

_COUNTER_RE = re.compile(r"\[[^\]]*?\b(\d+)/(\d+)\s*\]")


def counter(subject: str) -> tuple[int, int] | None:
    m = _COUNTER_RE.search(subject)
    return (int(m.group(1)), int(m.group(2))) if m else None


def is_reply(m: Mail) -> bool:
    return bool(re.match(r"^\s*(re|aw|fwd?)\s*:", m.subject, re.I))


def _line(m: Mail) -> str:
    return f"{(m.date or '?')[:16]}  {m.sender[:40]:40}  {m.subject[:90]}\n    <{m.msgid}>"


def show(ix: dict[str, Mail], msgid: str) -> None:
    m = ix[msgid.strip("<>")]
    print(f"Message-ID: <{m.msgid}>\nFrom: {m.sender}\nDate: {m.date}\nSubject: {m.subject}")
    print(f"In-Reply-To: {m.in_reply_to}\nArchive month: {m.month}")
    if m.paths:
        print("Files touched: " + ", ".join(m.paths))
    print("-" * 72)
    print(m.text)


def thread(ix: dict[str, Mail], msgid: str) -> None:
    kids = children_of(ix)
    root = thread_root(ix, msgid.strip("<>"))
    depth: dict[str, int] = {root: 0}
    for k in thread_of(ix, kids, root):
        d = depth.get(k, 0)
        for c in kids.get(k, []):
            depth[c] = d + 1
        mark = " <== " if k == msgid.strip("<>") else ""
        print("  " * d + _line(ix[k]).replace("\n", "\n" + "  " * d) + mark)


def posting(ix: dict[str, Mail], msgid: str) -> None:
    """The mails sent with this one: the same parent (cover) or the same sender, date, total."""
    m = ix[msgid.strip("<>")]
    cover = m if (counter(m.subject) or (0, 0))[0] == 0 else ix.get(m.parent or "")
    kids = children_of(ix)
    members = [m] if cover is None else [cover]
    if cover is not None:
        members += [
            ix[k]
            for k in kids.get(cover.msgid, [])
            if not is_reply(ix[k]) and counter(ix[k].subject) and ix[k].email == cover.email
        ]
    members.sort(key=lambda x: (counter(x.subject) or (0, 0))[0])
    for x in members:
        print(_line(x))
        if x.paths:
            print("    files: " + ", ".join(x.paths))


def find(ix: dict[str, Mail], words: list[str]) -> None:
    want = [w.lower() for w in words]
    hits = [m for m in ix.values() if all(w in m.subject.lower() for w in want)]
    for m in sorted(hits, key=lambda x: x.date or ""):
        print(_line(m))


def by(ix: dict[str, Mail], address: str) -> None:
    hits = [m for m in ix.values() if m.email == address.lower() and not is_reply(m)]
    for m in sorted(hits, key=lambda x: x.date or ""):
        c = counter(m.subject)
        if c is None or c[0] <= 1:
            print(_line(m))


def grep(ix: dict[str, Mail], pattern: str) -> None:
    rx = re.compile(pattern, re.I)
    for m in sorted(ix.values(), key=lambda x: x.date or ""):
        own = [ln for ln in m.text.split("\n") if not ln.lstrip().startswith(">")]
        hit = next((ln for ln in own if rx.search(ln)), None)
        if hit is not None:
            print(_line(m) + f"\n    | {hit.strip()[:110]}")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in {"show", "thread", "posting", "find", "by", "grep"}:
        print(__doc__)
        return 2
    ix = load_index()
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "show":
            show(ix, rest[0])
        elif cmd == "thread":
            thread(ix, rest[0])
        elif cmd == "posting":
            posting(ix, rest[0])
        elif cmd == "find":
            find(ix, rest)
        elif cmd == "by":
            by(ix, rest[0])
        else:
            grep(ix, " ".join(rest))
    except KeyError as e:
        print(f"not in the archive: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
