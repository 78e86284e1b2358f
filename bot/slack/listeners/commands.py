"""``/kvmarm …``: ack at once (usage errors and help in the ack), answer via ``respond()``."""

from __future__ import annotations

from logging import Logger

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.commands.grammar import UsageError
from bot.commands.results import Help
from bot.slack.blocks import answer_message, error_message
from bot.slack.replies import ANSWER_ERRORS, failure_message, parse_incoming, replies_for

COMMAND = "/kvmarm"


def register(app: App, deps) -> None:
    def ack_kvmarm(ack: Ack, command: dict) -> None:
        try:
            parsed = parse_incoming(command.get("text", ""))
        except UsageError as err:
            ack(**error_message(err))
            return
        if parsed.name == "help":
            ack(**answer_message(Help()))
            return
        ack()

    def answer_kvmarm(respond: Respond, command: dict, client: WebClient, logger: Logger) -> None:
        try:
            parsed = parse_incoming(command.get("text", ""))
        except UsageError:
            return  # answered in the ack
        if parsed.name == "help":
            return
        try:
            replies = replies_for(
                deps,
                parsed,
                channel=command.get("channel_id"),
                user=command.get("user_id"),
                client=client,
            )
            for reply in replies:
                respond(**reply, unfurl_links=False, unfurl_media=False)
        except ANSWER_ERRORS as exc:
            logger.exception("cannot answer %s", parsed.name)
            respond(**failure_message(f"Sorry, the database could not answer: {exc}"))

    app.command(COMMAND)(ack=ack_kvmarm, lazy=[answer_kvmarm])
