"""`/kvmarm subscribe <filter>`, `unsubscribe <filter>`, `subscriptions`: per channel.

Only channels the bot is a member of can subscribe (checked with ``conversations.info``);
deliveries check again (bot/slack/deliver.py).  Replies are ephemeral, filter text escaped.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.commands.grammar import Command
from bot.mrkdwn import escape_mrkdwn
from storage import live as store

log = logging.getLogger(__name__)


class NotInChannel(Exception):
    """The bot cannot post here (not a member, a DM, or it cannot see the channel)."""


def subscription_reply(deps, command: Command, *, channel: str | None, user: str | None,
                       client: WebClient | None) -> dict:  # fmt: skip
    if not channel or client is None:
        return _reply(":warning: Subscriptions work in a Slack channel.")
    db = deps.db_factory()
    if command.name == "subscriptions":
        return _reply(_listing(store.subscriptions(db, channel)))
    if command.name == "unsubscribe":
        if store.remove_subscription(db, channel, command.query):
            return _reply(f"Unsubscribed this channel from `{escape_mrkdwn(command.query)}`.")
        listing = _listing(store.subscriptions(db, channel))
        return _reply(
            f"This channel has no subscription `{escape_mrkdwn(command.query)}`.\n{listing}"
        )
    try:
        ensure_member(client, channel)
    except NotInChannel as exc:
        return _reply(f":warning: {escape_mrkdwn(str(exc))}")
    added = store.add_subscription(db, channel, command.query, user or "", deps.now())
    what = escape_mrkdwn(command.query)
    if not added:
        return _reply(f"This channel is already subscribed to `{what}`.")
    return _reply(
        f"Subscribed this channel to `{what}`. From now on each matching series gets one card "
        "here, updated as it moves; its later events go into the card's thread."
    )


class CannotTell(Exception):
    """Slack will not say whether the bot is in a channel (scope, auth, rate limit)."""


# Errors that mean "Slack refuses to tell us", as opposed to an answer or an unknown method.
_REFUSALS = frozenset(
    {"missing_scope", "not_authed", "invalid_auth", "account_inactive", "token_revoked",
     "ratelimited", "fatal_error", "internal_error", "request_timeout"}
)  # fmt: skip


def membership(client: WebClient, channel: str) -> bool | None:
    """Is the bot a member of ``channel`` (``conversations.info``)?  None when Slack's
    answer does not say (then posting decides); CannotTell when Slack refuses to answer."""
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = str(exc.response.get("error")) if exc.response is not None else str(exc)
        status = exc.response.status_code if exc.response is not None else 0
        if error == "channel_not_found":
            return False
        if error in _REFUSALS or status >= 500 or status == 429:
            raise CannotTell(error) from exc
        log.warning("conversations.info %s: %s; posting decides", channel, error)
        return None
    is_member = (info.get("channel") or {}).get("is_member")
    return None if is_member is None else bool(is_member)


def ensure_member(client: WebClient, channel: str) -> None:
    if not channel.startswith(("C", "G")):
        raise NotInChannel("Subscriptions are for channels, not direct messages.")
    try:
        member = membership(client, channel)
    except CannotTell as exc:
        log.warning("conversations.info %s: %s", channel, exc)
        raise NotInChannel(
            f"I cannot see this channel ({exc}): invite me with /invite @kvmarm"
        ) from exc
    if member is False:
        raise NotInChannel(
            "I am not in this channel: invite me with /invite @kvmarm, then subscribe."
        )


def _listing(subs: list[store.Subscription]) -> str:
    if not subs:
        return (
            "This channel has no subscriptions. Try `/kvmarm subscribe path:arch/arm64/kvm/vgic/*`."
        )
    lines = [f"• `{escape_mrkdwn(s.filter)}` (since {s.created_at[:10]})" for s in subs]
    return "This channel is subscribed to:\n" + "\n".join(lines)


def _reply(text: str) -> dict:
    return {
        "response_type": "ephemeral",
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}],
    }
