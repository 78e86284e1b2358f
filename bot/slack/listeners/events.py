"""@kvmarm mentions: the same grammar, answered as an ephemeral message to who asked."""

from __future__ import annotations

from logging import Logger

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.slack.replies import ANSWER_ERRORS, failure_message, replies_for_text


def register(app: App, deps) -> None:
    def ack_mention(ack: Ack) -> None:
        ack()

    def answer_mention(event: dict, client: WebClient, logger: Logger) -> None:
        def send(reply: dict) -> None:
            reply.pop("response_type", None)
            client.chat_postEphemeral(
                channel=event["channel"],
                user=event["user"],
                thread_ts=event.get("thread_ts"),
                **reply,
            )

        try:
            for reply in replies_for_text(deps, event.get("text", ""), channel=event["channel"]):
                send(reply)
        except ANSWER_ERRORS as exc:
            logger.exception("cannot answer a mention")
            send(failure_message(f"Sorry, the database could not answer: {exc}"))

    app.event("app_mention")(ack=ack_mention, lazy=[answer_mention])
