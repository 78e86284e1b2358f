"""Who a mail was sent to: the addresses in its To: and Cc: headers.  Pure."""

from __future__ import annotations

import email.policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses


def recipients(raw: bytes) -> frozenset[str]:
    """Lower-cased addresses of To: and Cc: (encoded words and folding handled)."""
    end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[: end + 1]
    msg = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    values = [str(v) for v in (msg.get_all("to") or []) + (msg.get_all("cc") or [])]
    return frozenset(addr.casefold() for _name, addr in getaddresses(values) if "@" in addr)
