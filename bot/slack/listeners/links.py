"""``link_shared`` for lore.kernel.org and patch.msgid.link → ``chat.unfurl`` with the
series card.  The same Message-ID is unfurled at most once per channel in ``QUIET``."""

from __future__ import annotations

from datetime import timedelta
from logging import Logger

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.live.unfurl import unfurl_card
from bot.slack.replies import ANSWER_ERRORS
from storage.live import claim_unfurl

QUIET = timedelta(minutes=30)
MAX_LINKS = 5  # Slack sends at most a handful per message; never unfurl more than this


def register(app: App, deps) -> None:
    def ack_links(ack: Ack) -> None:
        ack()

    def unfurl(event: dict, client: WebClient, logger: Logger) -> None:
        channel, ts = event.get("channel"), event.get("message_ts")
        if not channel or not ts:
            return
        unfurls: dict[str, dict] = {}
        try:
            db = deps.db_factory()
            for link in (event.get("links") or [])[:MAX_LINKS]:
                url = link.get("url") or ""
                found = unfurl_card(db, url, deps.config.lore_url)
                if found is None:
                    continue
                msgid, card = found
                if claim_unfurl(db, channel, msgid, deps.now(), QUIET):
                    unfurls[url] = card
        except ANSWER_ERRORS:
            logger.exception("cannot unfurl links in %s", channel)
            return
        if not unfurls:
            return
        try:
            client.chat_unfurl(channel=channel, ts=ts, unfurls=unfurls)
        except SlackApiError as exc:
            logger.warning("chat.unfurl in %s failed: %s", channel, exc.response.get("error"))

    app.event("link_shared")(ack=ack_links, lazy=[unfurl])
