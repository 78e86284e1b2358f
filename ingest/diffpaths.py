"""The files a patch touches, from its diff (for `path:` subscriptions).  Pure."""

from __future__ import annotations

import re

_GIT = "diff --git a/"
_PLUS_RE = re.compile(r"^(?:\+\+\+ b/|--- a/)(\S+)", re.MULTILINE)


def paths_of_diff(diff: str) -> tuple[str, ...]:
    """Paths named by ``diff --git a/X b/Y`` lines (both sides of a rename), else by the
    ``---``/``+++`` lines of a plain unified diff; in order, each once."""
    found: list[str] = []
    at = 0 if diff.startswith(_GIT) else diff.find("\n" + _GIT)
    while at != -1:
        start = diff.find(_GIT, at)
        end = diff.find("\n", start)
        line = diff[start + len(_GIT) : end if end != -1 else len(diff)]
        a, sep, b = line.partition(" b/")
        if sep and " " not in a and " " not in b:
            found += [a, b]
        at = diff.find("\n" + _GIT, start)
    if not found:
        found = _PLUS_RE.findall(diff)
    return tuple(dict.fromkeys(p for p in found if p != "/dev/null"))
