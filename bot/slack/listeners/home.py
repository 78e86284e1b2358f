"""``app_home_opened`` (Home tab) → ``views.publish`` with the person's view."""

from __future__ import annotations

from logging import Logger

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.home import home_view
from bot.slack.replies import ANSWER_ERRORS


def register(app: App, deps) -> None:
    def ack_home(ack: Ack) -> None:
        ack()

    def publish(event: dict, client: WebClient, logger: Logger) -> None:
        user = event.get("user")
        if not user or event.get("tab", "home") != "home":
            return
        try:
            view = home_view(deps, deps.db_factory(), user, client)
        except ANSWER_ERRORS:
            logger.exception("cannot build the Home tab for %s", user)
            return
        try:
            client.views_publish(user_id=user, view=view)
        except SlackApiError as exc:
            logger.warning("views.publish for %s failed: %s", user, exc.response.get("error"))

    app.event("app_home_opened")(ack=ack_home, lazy=[publish])
