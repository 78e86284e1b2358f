"""Links we build to mail on lore (public-inbox), one rule for the digest and the answers."""

from __future__ import annotations

import urllib.parse

_MSGID_SAFE = "@!$&*+,;=:~-._"  # everything else (/, ?, #, %, parentheses, …) is %-escaped


def lore_link(base: str, msgid: str) -> str:
    """https://lore.kernel.org/kvmarm/<msgid>/ with the Message-ID escaped like public-inbox."""
    return f"{base.rstrip('/')}/{urllib.parse.quote(msgid, safe=_MSGID_SAFE)}/"
