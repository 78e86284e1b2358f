"""@kvmarm mentions: the same grammar.  Inside a channel thread the answer goes into that
thread for everyone (no Share button needed); elsewhere, and for usage errors and
subscription replies, it is an ephemeral message to who asked."""

from __future__ import annotations

from logging import Logger

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.slack.replies import ANSWER_ERRORS, failure_message, replies_for_text


def register(app: App, deps) -> None:
    def ack_mention(ack: Ack) -> None:
        ack()

    def answer_mention(event: dict, client: WebClient, logger: Logger) -> None:
        thread_ts = event.get("thread_ts")

        def send(reply: dict) -> None:
            public = thread_ts is not None and reply.pop("response_type", None) == "in_thread"
            reply.pop("response_type", None)
            if public:
                blocks = [b for b in reply.get("blocks", []) if b.get("type") != "actions"]
                client.chat_postMessage(
                    channel=event["channel"],
                    thread_ts=thread_ts,
                    text=reply.get("text", ""),
                    blocks=blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                return
            client.chat_postEphemeral(
                channel=event["channel"], user=event["user"], thread_ts=thread_ts, **reply
            )

        try:
            replies = replies_for_text(
                deps,
                event.get("text", ""),
                channel=event["channel"],
                user=event.get("user"),
                client=client,
                in_thread=thread_ts is not None,
            )
            for reply in replies:
                send(reply)
        except ANSWER_ERRORS as exc:
            logger.exception("cannot answer a mention")
            send(failure_message(f"Sorry, the database could not answer: {exc}"))

    app.event("app_mention")(ack=ack_mention, lazy=[answer_mention])
