"""The files a patch touches, from its diff (for `path:` subscriptions).  Pure."""

from __future__ import annotations

import re

_GIT_RE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)
_PLUS_RE = re.compile(r"^(?:\+\+\+ b/|--- a/)(\S+)", re.MULTILINE)


def paths_of_diff(diff: str) -> tuple[str, ...]:
    """Paths named by ``diff --git a/X b/Y`` lines (both sides of a rename), else by the
    ``---``/``+++`` lines of a plain unified diff; in order, each once."""
    found: list[str] = []
    for a, b in _GIT_RE.findall(diff):
        found += [a, b]
    if not found:
        found = _PLUS_RE.findall(diff)
    return tuple(dict.fromkeys(p for p in found if p != "/dev/null"))
