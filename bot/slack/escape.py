"""Links in and text from Slack mrkdwn.

Mail text goes through ``bot.mrkdwn.escape_mrkdwn`` (exactly ``&``, ``<`` and ``>``, Slack's
own rule), so mentions are shown as typed and never notify anyone.  We never set
``link_names``, so a bare ``@here`` stays text too.  ``unescape_incoming`` undoes Slack's
formatting of what users type.
"""

from __future__ import annotations

import re

from bot.mrkdwn import escape_mrkdwn  # the one escaping rule for mail text sent to Slack

_UNESCAPE = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}


def link(url: str, label: str) -> str:
    """``<url|label>`` with the label escaped; ``url`` must come from us (already quoted)."""
    if any(c in url for c in "<>| "):
        raise ValueError(f"not a safe URL for a Slack link: {url!r}")
    return f"<{url.replace('&', '&amp;')}|{escape_mrkdwn(label)}>"


# What Slack sends us: slash-command and mention text with links as <url|label>, addresses as
# <mailto:a@b|a@b>, our own mention as <@U…>, and &, <, > as entities.
_INCOMING_RE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def unescape_incoming(text: str) -> str:
    """Slack-formatted input → what the user typed (mentions of users and channels dropped)."""

    def plain(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith(("@", "#", "!")):
            return ""
        if target.startswith("mailto:"):
            return label or target[len("mailto:") :]
        return target  # a URL: keep the URL itself, not its label

    text = _INCOMING_RE.sub(plain, text)
    return re.sub(r"&(amp|lt|gt);", lambda m: _UNESCAPE[m.group(0)], text)
