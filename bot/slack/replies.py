"""From command text to a Slack reply (plain data): the part every listener shares."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from bot.commands.answers import answer, summary_note
from bot.commands.grammar import PERSONAL, SLACK_ONLY, Command, UsageError, parse_command
from bot.mrkdwn import escape_mrkdwn
from bot.slack.blocks import answer_message, error_message
from bot.slack.escape import unescape_incoming
from bot.slack.personal import personal_reply
from bot.slack.subscribe import subscription_reply
from storage.db import StorageError


def parse_incoming(text: str) -> Command:
    """Slack-formatted text (links, entities, mentions) → Command, or UsageError."""
    return parse_command(unescape_incoming(text or ""))


def answer_for(deps, command: Command):
    """The answer (plain data) to a non-digest command, from this thread's connection."""
    return answer(deps.db_factory(), command, deps.sources)


def reply_for(deps, command: Command, *, channel: str | None = None, shareable=True) -> dict:
    """The ephemeral reply (``text`` + ``blocks``) for a parsed command."""
    if command.name in SLACK_ONLY or command.name in PERSONAL:
        return failure_message(f"`{command.name}` cannot be shared.")
    if command.name == "digest":
        if deps.digest is None:
            return failure_message("The digest is not available in this installation.")
        return deps.digest.reply(command, channel)
    return answer_message(answer_for(deps, command), shareable=shareable)


def replies_for(
    deps, command: Command, *, channel: str | None = None, user: str | None = None, client=None
) -> Iterator[dict]:
    """The reply, then (for `thread` with an LLM configured) a summary follow-up."""
    if command.name in PERSONAL:
        yield personal_reply(deps, command, user=user, client=client)
        return
    if command.name in SLACK_ONLY:
        yield subscription_reply(deps, command, channel=channel, user=user, client=client)
        return
    if command.name == "digest":
        yield reply_for(deps, command, channel=channel)
        return
    result = answer_for(deps, command)
    yield answer_message(result)
    if deps.summarise is not None:
        note = summary_note(deps.db_factory(), result, deps.summarise)
        if note is not None:
            yield answer_message(note, shareable=False)


def replies_for_text(
    deps,
    text: str,
    *,
    channel: str | None = None,
    user: str | None = None,
    client=None,
    in_thread: bool = False,
) -> Iterator[dict]:
    """Replies to typed text; with ``in_thread``, answers about the facts are marked
    ``response_type: in_thread`` (a mention in a thread is answered there, for everyone)."""
    try:
        command = parse_incoming(text)
    except UsageError as err:
        yield error_message(err)
        return
    for reply in replies_for(deps, command, channel=channel, user=user, client=client):
        if in_thread and command.name not in (*SLACK_ONLY, *PERSONAL, "digest"):
            reply["response_type"] = "in_thread"
        yield reply


def reply_for_text(deps, text: str, *, channel: str | None = None) -> dict:
    """The first reply to what a user typed (usage errors included)."""
    return next(replies_for_text(deps, text, channel=channel))


def failure_message(what: str) -> dict:
    text = escape_mrkdwn(what)
    return {
        "response_type": "ephemeral",
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}}],
    }


# Errors a reply may meet that are not bugs: the database is missing, locked or corrupt.
ANSWER_ERRORS = (sqlite3.Error, StorageError)
