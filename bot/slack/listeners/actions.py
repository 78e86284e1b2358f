"""Buttons: "Share in channel" (re-answers the command for everyone), "Post digest" and a
digest card's "Details" (the whole entry, ephemeral)."""

from __future__ import annotations

from logging import Logger

from slack_bolt import Ack, App, Respond

from bot.commands.grammar import UsageError, parse_command
from bot.digest.render_slack import DETAILS_ACTION
from bot.slack.blocks import POST_DIGEST_ACTION, SHARE_ACTION
from bot.slack.replies import ANSWER_ERRORS, failure_message, reply_for


def register(app: App, deps) -> None:
    def ack_button(ack: Ack) -> None:
        ack()

    def share(action: dict, body: dict, respond: Respond, logger: Logger) -> None:
        try:
            command = parse_command(action.get("value", ""))
            channel = (body.get("channel") or {}).get("id")
            reply = reply_for(deps, command, channel=channel, shareable=False)
        except UsageError as err:
            respond(**failure_message(f"Cannot share this answer: {err}"), replace_original=False)
            return
        except ANSWER_ERRORS as exc:
            logger.exception("cannot share %s", action.get("value", "")[:80])
            respond(**failure_message(f"Sorry, the database could not answer: {exc}"))
            return
        reply["response_type"] = "in_channel"
        respond(**reply, replace_original=False, unfurl_links=False, unfurl_media=False)
        respond(delete_original=True)

    def post_digest(action: dict, body: dict, respond: Respond, logger: Logger) -> None:
        if deps.digest is None:
            respond(**failure_message("The digest is not available in this installation."))
            return
        deps.digest.post_from_button(action, body, respond, logger)

    def details(action: dict, respond: Respond, logger: Logger) -> None:
        if deps.digest is None:
            respond(**failure_message("The digest is not available in this installation."))
            return
        try:
            deps.digest.details_from_button(action, respond, logger)
        except ANSWER_ERRORS as exc:
            logger.exception("cannot show digest details %s", action.get("value", "")[:80])
            respond(**failure_message(f"Sorry, the database could not answer: {exc}"))

    app.action(SHARE_ACTION)(ack=ack_button, lazy=[share])
    app.action(DETAILS_ACTION)(ack=ack_button, lazy=[details])
    app.action(POST_DIGEST_ACTION)(ack=ack_button, lazy=[post_digest])
