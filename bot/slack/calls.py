"""One Slack Web API call, and what its failure means for a write that may or may not have
happened: Slack refused it (``Refused``), it surely did not arrive (``NotSent``: connection
refused, rate limited), or nobody knows (``Unknown``: 5xx, timeout, connection lost after the
request left).  Plus the lookups that settle an unknown outcome from Slack itself: a message by
the metadata it carries, a file by its id among a thread's replies.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

MAX_PAGES = 20  # of 200 messages: a lookup reads at most 4000 messages


class CallFailed(Exception):
    """A Slack call did not succeed; ``reason`` is one line for people; ``status`` the HTTP
    status Slack answered with (None: no answer — connection refused, lost, timed out)."""

    def __init__(self, method: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{method}: {reason}")
        self.method = method
        self.reason = reason
        self.status = status


class Refused(CallFailed):
    """Slack answered with an error (``error``, e.g. not_in_channel): nothing happened."""

    status: int

    def __init__(self, method: str, error: str, status: int, needed: str | None = None) -> None:
        detail = f"{error} (HTTP {status})" + (f", needs the {needed} scope" if needed else "")
        super().__init__(method, detail, status)
        self.error = error
        self.needed = needed


class NotSent(CallFailed):
    """The request surely did not take effect (connection refused, rate limited)."""


class Unknown(CallFailed):
    """The request may or may not have taken effect (5xx, timeout, connection lost)."""


def call(method: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """``fn(**kwargs)`` (a WebClient method), its failures as Refused / NotSent / Unknown."""
    try:
        return fn(**kwargs)
    except SlackApiError as exc:
        raise _api_failure(method, exc) from exc
    except urllib.error.HTTPError as exc:  # an upload URL
        if exc.code >= 500:
            raise Unknown(method, f"HTTP {exc.code}", exc.code) from exc
        raise Refused(method, "upload_failed", exc.code) from exc
    except urllib.error.URLError as exc:
        raise _network_failure(method, exc.reason) from exc
    except (OSError, http.client.HTTPException, SlackClientError) as exc:
        raise _network_failure(method, exc) from exc


def _api_failure(method: str, exc: SlackApiError) -> CallFailed:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    data = data if isinstance(data, dict) else {}
    error = str(data.get("error") or "error")
    if status >= 500:
        return Unknown(method, f"{error} (HTTP {status})", status)
    if status == 429 or error == "ratelimited":
        return NotSent(method, f"rate limited (HTTP {status})", status)
    return Refused(method, error, status, data.get("needed"))


def _network_failure(method: str, reason: object) -> CallFailed:
    if isinstance(reason, ConnectionRefusedError | socket.gaierror):
        return NotSent(method, f"Slack cannot be reached ({_describe(reason)})")
    if isinstance(reason, TimeoutError):
        return Unknown(method, "Slack did not answer in time")
    return Unknown(method, f"the connection to Slack failed ({_describe(reason)})")


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def post_tagged(
    client: WebClient,
    channel: str,
    message: dict[str, Any],
    event_type: str,
    payload: dict[str, Any],
    *,
    thread_ts: str | None,
) -> str:
    """``chat.postMessage`` of ``message`` ({text, blocks}) carrying our metadata
    (``event_type`` and ``payload``: what ``find_message`` looks it up by after an unknown
    outcome), without link previews; its ts.  Raises CallFailed."""
    response = call(
        "chat.postMessage",
        client.chat_postMessage,
        channel=channel,
        text=message["text"],
        blocks=message["blocks"],
        thread_ts=thread_ts,
        unfurl_links=False,
        unfurl_media=False,
        metadata={"event_type": event_type, "event_payload": payload},
    )
    return str(response["ts"])


def find_message(
    client: WebClient,
    channel: str,
    payload: dict[str, Any],
    event_type: str,
    *,
    thread_ts: str | None,
    oldest: float,
    text: str | None = None,
) -> str | None:
    """The ts of the message in ``channel`` (or its thread) whose metadata is ``payload`` —
    or, among messages shown without any metadata, whose text is exactly ``text``.

    Raises CallFailed when the channel cannot be read (missing_scope, Slack down, …).
    """
    found = find_tagged(
        client, channel, event_type, payload, thread_ts=thread_ts, oldest=oldest, text=text
    )
    return found[0] if found else None


def find_tagged(
    client: WebClient,
    channel: str,
    event_type: str,
    wanted: dict[str, Any],
    *,
    thread_ts: str | None,
    oldest: float,
    text: str | None = None,
    partial: bool = False,
) -> tuple[str, dict[str, Any]] | None:
    """The ts and metadata payload of the message in ``channel`` (or its thread) whose
    payload is ``wanted`` (``partial``: holds every key of ``wanted``) — or, among messages
    shown without any metadata, whose text is exactly ``text`` (with an empty payload).

    Raises CallFailed when the channel cannot be read (missing_scope, Slack down, …).
    """
    same_text: tuple[str, dict[str, Any]] | None = None
    for message in _messages(client, channel, thread_ts=thread_ts, oldest=oldest):
        meta = message.get("metadata")
        if not meta:
            if text is not None and same_text is None and message.get("text") == text:
                same_text = (str(message["ts"]), {})
            continue
        payload = meta.get("event_payload") or {}
        if meta.get("event_type") == event_type and (
            all(payload.get(k) == v for k, v in wanted.items()) if partial else payload == wanted
        ):
            return str(message["ts"]), payload
    return same_text


def find_file(client: WebClient, channel: str, file_id: str, *, thread_ts: str) -> bool:
    """Was file ``file_id`` shared into the thread ``thread_ts``?  Its replies say so, or else
    files.info's ``shares`` (when the app may read files).  Raises CallFailed when the thread
    cannot be read."""
    for message in _messages(client, channel, thread_ts=thread_ts, oldest=0.0):
        if any(f.get("id") == file_id for f in message.get("files") or []):
            return True
    return _shared_in(client, channel, file_id)


def _shared_in(client: WebClient, channel: str, file_id: str) -> bool:
    """Does files.info list a share of ``file_id`` in ``channel``?  False when it cannot say."""
    try:
        info = call("files.info", client.files_info, file=file_id)
    except Refused:  # missing_scope (files:read), file_not_found: the thread had the last word
        return False
    shares = (info.get("file") or {}).get("shares") or {}
    return any(channel in (shares.get(kind) or {}) for kind in ("public", "private"))


def _messages(
    client: WebClient, channel: str, *, thread_ts: str | None, oldest: float
) -> Iterator[dict[str, Any]]:
    cursor = None
    fn: Callable[..., Any]
    for _ in range(MAX_PAGES):
        if thread_ts is None:
            method, fn = "conversations.history", client.conversations_history
            args: dict[str, Any] = {"oldest": f"{oldest:.6f}"}
        else:
            method, fn = "conversations.replies", client.conversations_replies
            args = {"ts": thread_ts}
        page = call(
            method,
            fn,
            channel=channel,
            include_all_metadata=True,
            limit=200,
            cursor=cursor,
            **args,
        )
        yield from page.get("messages") or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return
