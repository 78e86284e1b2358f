"""`/kvmarm iam`, `mine`, `notify on|off`: the asking Slack user and their list addresses.

With the ``users:read.email`` scope, a user with no linked address whose Slack profile
address has sent mail to the list is linked automatically (``how = profile``).
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.commands.grammar import Command
from bot.live.mine import mine_lines
from bot.live.waiting import person_addresses, waiting_for, waiting_lines
from bot.mrkdwn import escape_mrkdwn
from storage import live as store

log = logging.getLogger(__name__)
NO_LINK = (
    "I do not know your list address yet: tell me with `/kvmarm iam you@example.org` "
    "(the address you send patches and reviews from)."
)


def personal_reply(deps, command: Command, *, user: str | None, client: WebClient | None) -> dict:
    if not user:
        return _reply(":warning: This needs a Slack user.")
    db = deps.db_factory()
    if command.name == "iam":
        return _reply(_iam(deps, db, command.query, user, client))
    emails = linked_addresses(deps, db, user, client)
    if command.name == "waiting":
        return _waiting(deps, db, command.query, emails)
    if command.name == "notify":
        if not command.query:
            state = "on" if store.alerts_of(db, user) else "off"
            return _reply(f"Personal alerts are {state}. `/kvmarm notify on|off` changes it.")
        if command.query == "on" and not emails:
            return _reply(NO_LINK)
        store.set_alerts(db, user, command.query == "on", deps.now())
        if command.query == "off":
            return _reply("Personal alerts are off.")
        return _reply(
            "Personal alerts are on: I will send you a direct message when your series gets a "
            "review, is applied, dropped or asked to change, and when a series you reviewed "
            "gets a new version."
        )
    if not emails:
        return _reply(NO_LINK)
    lines = mine_lines(db, emails, deps.config.lore_url)
    who = ", ".join(escape_mrkdwn(e) for e in emails)
    if not lines:
        return _reply(f"No series from {who} on the list.")
    return _blocks(f"*Your series* ({who}), latest activity first", lines)


def linked_addresses(deps, db, user: str, client: WebClient | None) -> list[str]:
    """The user's list addresses; links the Slack profile address when it is on the list."""
    emails = [e for e, _how in store.addresses_of(db, user)]
    if emails or client is None:
        return emails
    try:
        profile = (client.users_info(user=user).get("user") or {}).get("profile") or {}
    except SlackApiError as exc:  # no users:read.email: people link themselves
        log.debug("users.info %s: %s", user, exc.response.get("error"))
        return []
    email = (profile.get("email") or "").casefold()
    if email and store.address_seen(db, email):
        store.link_person(db, user, email, "profile", deps.now())
        return [email]
    return []


def _iam(deps, db, query: str, user: str, client: WebClient | None) -> str:
    if query == "--forget":
        n = store.forget_person(db, user)
        return f"Forgot {n} address{'es' if n != 1 else ''}; personal alerts are off."
    if not query:
        linked = store.addresses_of(db, user)
        if not linked:
            emails = linked_addresses(deps, db, user, client)
            if not emails:
                return NO_LINK
            linked = store.addresses_of(db, user)
        shown = ", ".join(
            f"{escape_mrkdwn(e)}" + (" (from your Slack profile)" if how == "profile" else "")
            for e, how in linked
        )
        return f"You are {shown} on the list."
    store.link_person(db, user, query, "typed", deps.now())
    seen = store.address_seen(db, query)
    note = (
        f" ({seen} mails from it on the list)"
        if seen
        else " — no mail from it on the list yet, so nothing to show until there is"
    )
    return f"Linked you to {escape_mrkdwn(query)}{note}."


def _waiting(deps, db, query: str, emails: list[str]) -> dict:
    """`waiting`: what waits on you (or the whole queue when we do not know you);
    `waiting all`; `waiting <person>`."""
    if query.casefold() == "all" or (not query and not emails):
        entries = waiting_for(db, deps.now(), None)
        title = f"*Review queue*: {len(entries)} versions wait for review, longest first"
        if not query:
            title += f"\n_{NO_LINK}_"
    else:
        who, addresses = (", ".join(emails), emails) if not query else person_addresses(db, query)
        if not addresses:
            return _reply(f"Nobody called {escape_mrkdwn(query)} gave a review on the list.")
        entries = waiting_for(db, deps.now(), addresses)
        title = f"*Waiting on {escape_mrkdwn(who)}*: {len(entries)} versions, longest first"
    lines = waiting_lines(entries, deps.config.lore_url)
    return _blocks(title, lines or ["Nothing waits."])


def _reply(text: str) -> dict:
    return _blocks(text, [])


def _blocks(title: str, paragraphs: list[str]) -> dict:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": title[:3000]}}]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": p[:3000]}} for p in paragraphs
    ]
    return {"response_type": "ephemeral", "text": title[:3000], "blocks": blocks[:50]}
