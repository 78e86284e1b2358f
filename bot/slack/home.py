"""App Home: rebuilt from the database each time someone opens it — what waits on them (their
series with changes requested or open questions, and review requests from `waiting`), their
series (`mine`), the subscriptions they made and whether personal alerts are on."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.live.mine import mine_lines
from bot.live.waiting import waiting_for, waiting_lines
from bot.mrkdwn import escape_mrkdwn
from bot.slack.personal import NO_LINK, linked_addresses
from storage import live as store

MAX_BLOCKS = 100  # a Home tab view allows 100 blocks


def home_view(deps, db, user: str, client: WebClient | None) -> dict:
    emails = linked_addresses(deps, db, user, client)
    blocks: list[dict] = [_header("kvmarm")]
    if not emails:
        blocks.append(_text(NO_LINK))
    else:
        who = ", ".join(escape_mrkdwn(e) for e in emails)
        lines = mine_lines(db, emails, deps.config.lore_url)
        yours = [line for line in lines if "waits on you" in line]
        reviews = waiting_lines(waiting_for(db, deps.now(), emails), deps.config.lore_url)
        blocks.append(_header("Waiting on you"))
        blocks += [_text(line) for line in yours + reviews[:10]] or [_text("Nothing waits.")]
        blocks.append(_header(f"Your series ({who})"))
        blocks += [_text(line) for line in lines] or [_text("No series from you on the list.")]
    alerts = "on" if store.alerts_of(db, user) else "off"
    blocks.append(_header("Settings"))
    blocks.append(_text(f"Personal alerts: *{alerts}* (`/kvmarm notify on|off`)"))
    mine = [s for s in store.subscriptions(db) if s.created_by == user]
    subs = "\n".join(f"• <#{s.channel}>: `{escape_mrkdwn(s.filter)}`" for s in mine)
    blocks.append(
        _text("Subscriptions you made:\n" + subs if subs else "You made no subscriptions.")
    )
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def _header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150]}}


def _text(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
