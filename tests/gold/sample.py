"""Draw the blind gold samples: seeded, random, from months the rules were not written on.

    python -m tests.gold.sample [--seed kvmarm-gold-2021h2] [--parts 3]

Rules are written and tuned on the archive up to 2021-06; samples come from 2021-07..2022-02.
Candidates are found with plain patterns (standard library only, nothing of kvmarm-bot's
rules), mails already used by an earlier hand-made gold set under tests/fixtures/ are left out,
and the candidates are shuffled with a fixed seed and dealt into ``--parts`` disjoint parts,
so each part is a fresh sample for one score (tests/gold/README.md says which part scored
what).  Each part is written to tests/gold/samples/<seed-tail>-p<N>/items.json:

- ``trailers``: reply trailers (Reviewed/Acked/Tested-by written, not quoted, in a reply).
  Every *worded* one — its paragraph has other words, or the sender's own line right above
  or a "to/for …" line right below it — is dealt out, plus plain ones at random up to 150.
- ``statements``: replies whose own text has apply/queue/pull/drop/revert/pick-up words:
  every one whose line starts with such a verb (most of the window's were read for the
  earlier applied gold set and are left out), the rest up to 80 from anywhere in the text.
- ``versions``: 25 postings that say v2 or later (find the version before), and 15 pairs of
  postings by one sender with half-similar titles (are they consecutive versions?).
- ``threads``: 30 threads, for a query a maintainer would type and the series it means.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path
from typing import Any

from tests.gold.mailindex import Mail, load_index
from tests.gold.mailview import counter, is_reply

WINDOW = ("2021-07", "2022-02")
HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"

_TRAILER_RE = re.compile(r"^\s*(Reviewed|Acked|Tested)-by:\s*(.*?)\s*$", re.I)
_OTHER_TAG_RE = re.compile(
    r"^\s*(Signed-off-by|Cc|Link|Fixes|Reported-by|Suggested-by|Co-developed-by|Message-Id|"
    r"Change-Id)\s*:",
    re.I,
)
_FOOTER_RE = re.compile(
    r"^\s*(--\s*$|_{10,}|kvmarm mailing list|kvmarm@lists|https?://lists\.cs\.columbia\.edu|$)",
    re.I,
)
_SIGNOFF_RE = re.compile(
    r"^\s*(thanks|thank you|cheers|regards|best|br|thx)\b[\s,.!]*(\w+)?[\s,.!]*$", re.I
)
_STRONG_RE = re.compile(
    r"^\s*(?:\w+[,!]?\s+){0,3}(applied|queued|picked up|pulled|merged|pushed|dropped|reverted|"
    r"taken|took)\b",
    re.I,
)
_ANY_RE = re.compile(
    r"\b(appl(?:y|ied|ying)|queue[ds]?|queuing|picked up|pick(?:ed)? (?:it|this|them|these) up|"
    r"pull(?:ed)?|merg(?:e|ed)|push(?:ed)?|drop(?:ped)?|revert(?:ed)?|take|taken|took|"
    r"unqueue)\b",
    re.I,
)
_EMAIL_RE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def in_window(m: Mail) -> bool:
    return WINDOW[0] <= m.month <= WINDOW[1]


def used_msgids() -> set[str]:
    """Message-IDs named anywhere in the earlier, hand-made gold sets (not unseen mail)."""
    out: set[str] = set()
    for path in FIXTURES.rglob("*.json"):
        out.update(re.findall(r'"([^"\s]+@[^"\s]+)"', path.read_text(encoding="utf-8")))
    return out


def own_lines(m: Mail) -> list[str]:
    return [ln for ln in m.text.split("\n") if not ln.lstrip().startswith(">")]


def reply_trailers(m: Mail) -> list[dict[str, Any]]:
    """The trailers a reply gives, each with whether words around it may say its scope."""
    lines = m.text.split("\n")
    out: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        tm = _TRAILER_RE.match(line)
        if tm is None:
            continue
        a = i
        while a > 0 and lines[a - 1].strip() and not lines[a - 1].lstrip().startswith(">"):
            a -= 1
        b = i
        while (
            b + 1 < len(lines)
            and lines[b + 1].strip()
            and not lines[b + 1].lstrip().startswith(">")
        ):
            b += 1
        para = lines[a : b + 1]
        if any(re.match(r"^\s*Signed-off-by:", x, re.I) for x in para):
            continue  # the sign-off block of a patch carried in the reply
        rest = [
            x
            for x in para
            if not _TRAILER_RE.match(x)
            and not _OTHER_TAG_RE.match(x)
            and not _FOOTER_RE.match(x)
            and not _SIGNOFF_RE.match(x)
        ]
        j = a - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        above = lines[j] if j >= 0 else ""
        own_above = bool(
            above.strip()
            and not above.lstrip().startswith(">")
            and not re.search(r"wrote:\s*$", above)
            and not _FOOTER_RE.match(above)
            and not _SIGNOFF_RE.match(above)
        )
        k = b + 1
        while k < len(lines) and not lines[k].strip():
            k += 1
        below = lines[k] if k < len(lines) else ""
        scoped_below = (
            bool(re.match(r"\s*(to|for|on|except|but|not)\b", below, re.I)) and len(below) < 60
        )
        em = _EMAIL_RE.search(tm.group(2))
        out.append(
            {
                "msgid": m.msgid,
                "kind": tm.group(1).capitalize() + "-by",
                "email": em.group(1).lower() if em else "",
                "line": line.strip(),
                "worded": bool(rest) or own_above or scoped_below,
            }
        )
    return out


def postings(ix: dict[str, Mail]) -> list[Mail]:
    """The first mail of each posting: a cover (0/N), an unnumbered patch, or 1/N sent bare."""
    out = []
    for m in ix.values():
        if is_reply(m) or not re.search(r"\[[^\]]*(PATCH|RFC)", m.subject, re.I):
            continue
        c = counter(m.subject)
        if c is None or c[0] == 0 or (c[0] == 1 and (m.parent is None or m.parent not in ix)):
            out.append(m)
    return out


_VERSION_RE = re.compile(r"\[[^\]]*\bv(\d+)\b[^\]]*\]", re.I)


def version_of(m: Mail) -> int:
    v = _VERSION_RE.search(m.subject)
    return int(v.group(1)) if v else 1


def title_words(subject: str) -> set[str]:
    t = re.sub(r"^(\s*(re|fwd?)\s*:\s*)+", "", subject, flags=re.I)
    t = re.sub(r"\[[^\]]*\]", " ", t)
    return {w for w in re.findall(r"[a-z0-9_]+", t.lower()) if len(w) > 1}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def deal(items: list[Any], parts: int, rng: random.Random) -> list[list[Any]]:
    items = list(items)
    rng.shuffle(items)
    return [items[i::parts] for i in range(parts)]


def draw(seed: str, parts: int) -> list[dict[str, Any]]:
    ix = load_index()
    used = used_msgids()
    window = sorted((m for m in ix.values() if in_window(m)), key=lambda m: m.msgid)
    rng = random.Random(seed)

    trailers = [t for m in window if is_reply(m) and m.msgid not in used for t in reply_trailers(m)]
    worded = deal([t for t in trailers if t["worded"]], parts, rng)
    plain = deal([t for t in trailers if not t["worded"]], parts, rng)

    strong, anyhow = [], []
    for m in window:
        if not is_reply(m) or m.msgid in used:
            continue
        own = own_lines(m)
        s = next((ln for ln in own if _STRONG_RE.match(ln)), None)
        if s is not None:
            strong.append({"msgid": m.msgid, "line": s.strip()})
            continue
        a = next(
            (ln for ln in own if _ANY_RE.search(ln) and not re.match(r"^[-+@ ]|^diff ", ln)), None
        )
        if a is not None:
            anyhow.append({"msgid": m.msgid, "line": a.strip()})
    strong_parts, any_parts = deal(strong, parts, rng), deal(anyhow, parts, rng)

    posts = sorted(postings(ix), key=lambda m: m.msgid)
    later = [
        {"msgid": m.msgid, "subject": m.subject}
        for m in posts
        if in_window(m) and version_of(m) >= 2 and m.msgid not in used
    ]
    later_parts = deal(later, parts, rng)
    by_sender: dict[str, list[Mail]] = {}
    for m in posts:
        by_sender.setdefault(m.email, []).append(m)
    pairs = []
    for m in posts:
        if not in_window(m) or m.msgid in used:
            continue
        mine = title_words(m.subject)
        for o in by_sender.get(m.email, []):
            if (o.date or "") >= (m.date or "") or o.msgid == m.msgid:
                continue
            j = jaccard(mine, title_words(o.subject))
            if 0.35 <= j < 0.85:
                pairs.append(
                    {
                        "older": o.msgid,
                        "newer": m.msgid,
                        "older_subject": o.subject,
                        "newer_subject": m.subject,
                    }
                )
    pair_parts = deal(pairs, parts, rng)

    roots = sorted({m.msgid for m in posts if in_window(m) and m.msgid not in used})
    root_parts = deal(roots, parts, rng)

    out = []
    for p in range(parts):
        n_plain = max(0, 150 - len(worded[p]))
        items: dict[str, Any] = {
            "seed": seed,
            "part": p + 1,
            "window": list(WINDOW),
            "trailers": sorted(
                worded[p] + plain[p][:n_plain], key=lambda t: (t["msgid"], t["line"])
            ),
            "statements": sorted(
                strong_parts[p] + any_parts[p][: max(0, 80 - len(strong_parts[p]))],
                key=lambda s: s["msgid"],
            ),
            "versions": {
                "later": sorted(later_parts[p][:25], key=lambda x: x["msgid"]),
                "pairs": sorted(pair_parts[p][:15], key=lambda x: (x["newer"], x["older"])),
            },
            "threads": sorted(root_parts[p][:30]),
        }
        for i, t in enumerate(items["trailers"]):
            t["id"] = f"t{i + 1:03d}"
        for i, s in enumerate(items["statements"]):
            s["id"] = f"s{i + 1:03d}"
        for i, v in enumerate(items["versions"]["later"]):
            v["id"] = f"v{i + 1:03d}"
        for i, v in enumerate(items["versions"]["pairs"]):
            v["id"] = f"p{i + 1:03d}"
        out.append(items)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", default="kvmarm-gold-2021h2")
    ap.add_argument("--parts", type=int, default=3)
    args = ap.parse_args()
    for items in draw(args.seed, args.parts):
        tail = args.seed.removeprefix("kvmarm-gold-")
        out = HERE / "samples" / f"{tail}-p{items['part']}" / "items.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(items, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(
            f"{out.relative_to(HERE.parent.parent)}: {len(items['trailers'])} trailers "
            f"({sum(t['worded'] for t in items['trailers'])} worded), "
            f"{len(items['statements'])} statements, {len(items['versions']['later'])} later "
            f"versions, {len(items['versions']['pairs'])} pairs, {len(items['threads'])} threads"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
