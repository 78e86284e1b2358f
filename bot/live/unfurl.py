"""What a pasted lore link unfurls into: the compact card of its series (a reply's link says
"reply by X"), or a short card of a thread outside any series; None for mail we do not have."""

from __future__ import annotations

from bot.links import lore_link
from bot.live.cards import card_facts, card_message, load_series
from bot.mrkdwn import escape_mrkdwn
from storage.db import Database
from storage.live import is_posting_mail
from storage.search import message_facts, msgid_in, target_of_message, thread_row


def unfurl_card(db: Database, url: str, lore_url: str) -> tuple[str, dict] | None:
    """(Message-ID, the unfurl for ``url``: {"blocks": …}) or None."""
    msgid = msgid_in(url)
    if msgid is None:
        return None
    target = target_of_message(db, msgid)
    if target is None:
        return None
    mail = message_facts(db, [msgid]).get(msgid)
    if target.kind == "series":
        series = load_series(db, target.id)
        if series is None or not series["versions"]:
            return None
        note = None
        if mail is not None and not is_posting_mail(db, msgid):
            note = f"↳ reply by {mail['name'] or mail['email']}, {(mail['date'] or '')[:10]}"
        message = card_message(card_facts(db, series), lore_url, note=note)
        return msgid, {"blocks": message["blocks"]}
    return msgid, {"blocks": _thread_blocks(db, target.id, mail, msgid, lore_url)}


def _thread_blocks(db, root: str, mail: dict | None, msgid: str, lore_url: str) -> list[dict]:
    row = thread_row(db, root) or {}
    subject = escape_mrkdwn(row.get("subject") or (mail or {}).get("title") or root)
    lines = [
        f"*<{lore_link(lore_url, msgid)}|{subject.replace('|', '¦')}>*",
        f"thread · {row.get('n_messages', 1)} mails · last activity "
        f"{(row.get('last_date') or '')[:10] or 'unknown'}",
    ]
    if mail is not None and msgid != root:
        lines.append(f"↳ reply by {escape_mrkdwn(mail['name'] or mail['email'])}")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
