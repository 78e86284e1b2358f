"""The digest in Slack: `/kvmarm digest …` (an ephemeral preview with a *Post to channel*
button), that button, and the weekly job `serve --schedule` runs.

Posting is bot.slack.post.post_digest: once per (week, channel), only to allowed channels
(KVMARM_CHANNEL / KVMARM_CHANNELS).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from logging import Logger

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.blockkit import MAX_BLOCKS
from bot.commands.digest import digest_period
from bot.commands.grammar import Command
from bot.config import Config
from bot.digest import (
    Period,
    PeriodError,
    Summariser,
    build_digest,
    period_from_key,
    period_last_week,
    render_slack,
)
from bot.digest.render_slack import render_details
from bot.mrkdwn import escape_mrkdwn
from bot.slack.blocks import POST_DIGEST_ACTION, button
from bot.slack.post import PostError, PostLater, post_digest

log = logging.getLogger(__name__)


class DigestUnfinished(ConnectionError):
    """Slack failed part of the weekly post; an OSError, so the schedule retries the job."""


@dataclass(frozen=True)
class DigestGlue:
    config: Config
    client: WebClient
    summariser: Summariser
    db_factory: Callable
    now: Callable[[], datetime]
    # Pulls a period's mail from lore before the scheduled post (serve wires bot.sync.lore).
    pull: Callable[[object, Period], object] | None = None

    # ---- /kvmarm digest … -----------------------------------------------------------------

    def _model(self, period: Period, lang: str) -> dict:
        """The digest of ``period`` as the app shows it (preview, Details)."""
        return build_digest(
            self.db_factory(),
            period,
            lang=lang,
            summariser=self.summariser,
            now=self.now(),
            lore_url=self.config.lore_url,
        )

    def reply(self, command: Command, channel: str | None) -> dict:
        """The digest's parent message as an ephemeral preview, with a Post button."""
        try:
            period = digest_period(command.query, self.now())
        except PeriodError as exc:
            return _note(f"Not a week: {exc}")
        lang = self.config.lang
        model = self._model(period, lang)
        if not model["entries"]:
            return _note(f"No mail dated in {period.key} in the database (sync first?).")
        messages = render_slack(model)
        parent = messages[0]
        blocks = list(parent["blocks"])[: MAX_BLOCKS - 2]
        note = f"Preview: the post adds {len(messages) - 1} thread replies (one per bucket)."
        if channel in self.config.allowed_channels:
            value = json.dumps({"week": period.key, "lang": lang})
            blocks.append(_context(note))
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        button("Post to this channel", POST_DIGEST_ACTION, value, primary=True)
                    ],
                }
            )
        else:
            blocks.append(
                _context(
                    note + " This channel may not receive digests "
                    "(KVMARM_CHANNEL / KVMARM_CHANNELS)."
                )
            )
        return {"response_type": "ephemeral", "text": parent["text"], "blocks": blocks}

    # ---- the Post button -----------------------------------------------------------------

    def post_from_button(self, action: dict, body: dict, respond: Respond, logger: Logger):
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get(
            "channel_id"
        )
        try:
            wanted = json.loads(action.get("value") or "{}")
            period = digest_period(str(wanted.get("week", "")), self.now())
            lang = wanted.get("lang") if wanted.get("lang") in ("en", "zh") else self.config.lang
        except (ValueError, PeriodError) as exc:
            respond(**_note(f"Cannot post: {exc}"), replace_original=False)
            return
        try:
            result = post_digest(
                self.db_factory(),
                self.client,
                channel or "",
                period,
                lang=lang,
                summariser=self.summariser,
                allowed_channels=self.config.allowed_channels,
                now=self.now(),
                lore_url=self.config.lore_url,
            )
        except PostError as exc:
            respond(**_note(f"Not posted: {exc}"), replace_original=False)
            return
        logger.info(
            "digest %s posted to %s (already: %s)", period.key, channel, result.already_posted
        )
        if not result.complete:
            open_parts = ", ".join(result.missing)
            respond(
                **_note(
                    f"The digest of {period.key} is posted in this channel, except {open_parts}: "
                    f"{'; '.join(result.warnings)}. Press again later to finish it."
                ),
                replace_original=False,
            )
            return
        done = "was already posted here" if result.already_posted else "is posted in this channel"
        respond(**_note(f"The digest of {period.key} {done}."), replace_original=True)

    # ---- the Details button on a digest card ---------------------------------------------

    def details_from_button(self, action: dict, respond: Respond, logger: Logger) -> None:
        """The whole entry behind a card (trailers per patch, every mail), only for the
        person who clicked: the model is rebuilt from the database (summaries are cached)."""
        try:
            wanted = json.loads(action.get("value") or "{}")
            period = period_from_key(str(wanted.get("p", "")))
            key = str(wanted.get("e", ""))
            lang = wanted.get("l") if wanted.get("l") in ("en", "zh") else self.config.lang
        except (ValueError, PeriodError) as exc:
            respond(**_note(f"Cannot show details: {exc}"), replace_original=False)
            return
        model = self._model(period, lang)
        entry = next((e for e in model["entries"] if e["key"] == key), None)
        if entry is None:
            logger.info("details: %s not in the digest of %s", key[:80], period.key)
            respond(
                **_note(f"That entry is no longer in the digest of {period.key}."),
                replace_original=False,
            )
            return
        respond(**render_details(entry, model), replace_original=False)

    # ---- serve --schedule ----------------------------------------------------------------

    def weekly_job(self, channels: tuple[str, ...]) -> Callable[[datetime], None]:
        """Post last week's digest to ``channels`` (the job for bot.slack.schedule)."""

        def job(due: datetime) -> None:
            period = period_last_week(due)
            if self.pull is not None:
                self.pull(self.db_factory(), period)  # LoreError: the schedule retries
            unfinished: list[str] = []
            for channel in channels:
                try:
                    result = post_digest(
                        self.db_factory(),
                        self.client,
                        channel,
                        period,
                        lang=self.config.lang,
                        summariser=self.summariser,
                        allowed_channels=self.config.allowed_channels,
                        now=self.now(),
                        lore_url=self.config.lore_url,
                    )
                except PostLater as exc:  # Slack down: the schedule runs the job again
                    log.error("weekly digest %s to %s not posted: %s", period.key, channel, exc)
                    unfinished.append(channel)
                    continue
                except PostError as exc:  # e.g. nothing synced for the week: say so, go on
                    log.error("weekly digest %s to %s not posted: %s", period.key, channel, exc)
                    continue
                if not result.complete:
                    log.warning(
                        "weekly digest %s to %s: %s",
                        period.key,
                        channel,
                        "; ".join(result.warnings),
                    )
                    unfinished.append(channel)
                    continue
                log.info(
                    "weekly digest %s to %s: %s",
                    period.key,
                    channel,
                    "already posted" if result.already_posted else f"posted {result.parent_ts}",
                )
            if unfinished:  # retried by bot.slack.schedule; what was posted is not sent again
                raise DigestUnfinished(
                    f"weekly digest {period.key} not completely posted to {', '.join(unfinished)}"
                )

        return job


def _note(text: str) -> dict:
    escaped = escape_mrkdwn(text)
    return {
        "response_type": "ephemeral",
        "text": escaped,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": escaped}}],
    }


def _context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(text)}]}
