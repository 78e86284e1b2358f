"""The one place a slack_sdk WebClient is built: base URL, timeout, which calls it may retry.

The SDK's own retry handlers re-send a request by themselves.  That is right for a call that
changes nothing (reading history, auth.test, joining a channel) and for 429 (Slack refused the
request, it did nothing), but wrong for a write such as ``chat.postMessage``: a 5xx, a reset
connection or a timeout may come *after* Slack accepted the message, and re-sending it posts it
twice.  So the client retries 5xx and connection errors only for the methods in
``SAFE_TO_REPEAT``; a write that fails that way reaches its caller, which looks up whether it
arrived before sending it again (bot.slack.post).
"""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.config import Config

SLACK_API_URL = "https://slack.com/api/"
MAX_RETRY_AFTER = 60  # seconds: a longer Retry-After is not waited for in the call

# Web API methods that change nothing, or nothing twice: the SDK may repeat them on its own.
SAFE_TO_REPEAT = frozenset(
    {
        "auth.test",
        "conversations.history",
        "conversations.replies",
        "conversations.info",
        "conversations.join",  # joining twice is "already_in_channel"
        "files.info",
        "files.list",
        "files.getUploadURLExternal",  # an upload that is never completed is dropped by Slack
    }
)


class OnlySafeToRepeat(RetryHandler):
    """Wraps a retry handler so it applies only to methods in ``SAFE_TO_REPEAT``."""

    def __init__(self, inner: RetryHandler) -> None:
        super().__init__(inner.max_retry_count, inner.interval_calculator)
        self.inner = inner

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if api_method(request.url) not in SAFE_TO_REPEAT:
            return False
        return self.inner._can_retry(state=state, request=request, response=response, error=error)


class ServerErrorRetryHandler(RetryHandler):
    """Any 5xx (the SDK's own handler retries only 500 and 503, not 502 or 504)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code <= 599


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """429 after Retry-After — unless Slack asks to wait longer than ``MAX_RETRY_AFTER``."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), "1")
        seconds = (wait if isinstance(wait, str) else wait[0]).strip()
        # the SDK sleeps int(Retry-After): anything but whole seconds is left to the caller
        return seconds.isdigit() and int(seconds) <= MAX_RETRY_AFTER


def api_method(url: str) -> str:
    """``https://slack.com/api/chat.postMessage?x`` → ``chat.postMessage``."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def make_web_client(
    config: Config, *, timeout: int = 30, retries: int = 3, logger: logging.Logger | None = None
) -> WebClient:
    """A WebClient for the bot token, pointed at ``SLACK_API_URL`` when configured.

    429 is retried for every method (after Retry-After, up to ``MAX_RETRY_AFTER``: a refused
    request did nothing); 5xx and connection errors only for
    ``SAFE_TO_REPEAT`` methods.  ``timeout`` (seconds) bounds every call.
    """
    return WebClient(
        token=config.slack_bot_token,
        base_url=config.slack_api_url or SLACK_API_URL,
        timeout=timeout,
        user_agent_prefix="kvmarm-bot",
        logger=logger,
        retry_handlers=[
            BoundedRateLimitRetryHandler(max_retry_count=retries),
            OnlySafeToRepeat(ServerErrorRetryHandler(max_retry_count=retries)),
            OnlySafeToRepeat(ConnectionErrorRetryHandler(max_retry_count=retries)),
        ],
    )


def upload_bytes(client: WebClient, url: str, data: bytes) -> int:
    """POST ``data`` to an upload URL from files.getUploadURLExternal; the HTTP status.

    Raises urllib's HTTPError for an error status, OSError when Slack cannot be reached.
    """
    request = urllib.request.Request(url, data=data, method="POST")
    response: Any
    with urllib.request.urlopen(request, timeout=client.timeout) as response:
        response.read()
        return int(response.status)
