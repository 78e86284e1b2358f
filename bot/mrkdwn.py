"""Mail text as Slack mrkdwn: the one escaping rule and a cut that keeps markup whole.

Slack treats ``<…>`` as links and mentions (``<!channel>``, ``<!here>``, ``<@U123>``,
``<#C123>``) and ``&``-entities as markup; escaping exactly ``&``, ``<`` and ``>`` (Slack's own
rule) shows them as typed, so no mail can notify anyone.  Used by the digest renderer and by
the answers' blocks alike.
"""

from __future__ import annotations


def escape_mrkdwn(text: str | None) -> str:
    """Mail text as literal Slack text: ``&``, ``<``, ``>`` escaped, so no mention, channel
    link, special command (``<!channel>``) or link from a mail can take effect."""
    if not text:
        return ""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut_mrkdwn(text: str, limit: int) -> str:
    """At most ``limit`` characters (with "…"), never splitting a ``<link|label>``, an
    ``&entity;`` or a code span/fence (Slack would render the rest wrong)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for opener, closer in (("<", ">"), ("&", ";")):
        start = cut.rfind(opener)
        if start > cut.rfind(closer):
            cut = cut[:start]
    if cut.count("```") % 2:
        cut = cut[: cut.rfind("```")]
    elif cut.count("`") % 2:
        cut = cut[: cut.rfind("`")]
    return cut.rstrip() + "…"
