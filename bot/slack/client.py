"""The one place a slack_sdk WebClient is built: base URL, timeout, retries.

Retries: 429 (honouring Retry-After), 5xx and connection errors, a few times each; then the
SlackApiError reaches the caller, who says what failed.
"""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.config import Config

SLACK_API_URL = "https://slack.com/api/"


def make_web_client(config: Config, *, timeout: int = 30, retries: int = 3) -> WebClient:
    """A WebClient for the bot token, pointed at ``SLACK_API_URL`` when configured."""
    return WebClient(
        token=config.slack_bot_token,
        base_url=config.slack_api_url or SLACK_API_URL,
        timeout=timeout,
        user_agent_prefix="kvmarm-bot",
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=retries),
            ServerErrorRetryHandler(max_retry_count=retries),
            ConnectionErrorRetryHandler(max_retry_count=retries),
        ],
    )
