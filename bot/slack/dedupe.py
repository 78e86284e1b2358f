"""Each Events API delivery is answered once.  Slack re-sends an event it thinks was not
acknowledged (``X-Slack-Retry-Num`` / ``retry_attempt``), with the same ``event_id``: a
global Bolt middleware records every event_id and acknowledges a repeat with 200 without
running any listener — in HTTP mode and in Socket Mode alike.

The record is kept in memory (bounded) and, when a database is given, in the
``slack_events`` table, so a retry that arrives after a restart is recognised too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest

from storage.db import Database
from storage.deliveries import first_delivery

log = logging.getLogger(__name__)
MEMORY = 10_000  # event ids remembered in memory


class EventDeduper:
    """``first(event_id)``: True once per event_id (memory, then the database if given)."""

    def __init__(
        self,
        db_factory: Callable[[], Database] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db_factory = db_factory
        self._now = now
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            while len(self._seen) > MEMORY:
                self._seen.popitem(last=False)
        if self._db_factory is None:
            return True
        try:
            return first_delivery(self._db_factory(), event_id, self._now())
        except sqlite3.Error as exc:  # the database is busy or read-only: memory must do
            log.warning("cannot record Slack event %s: %s", event_id, exc)
            return True


def install(app: App, deduper: EventDeduper) -> None:
    """Register the middleware on ``app`` (before any listener runs)."""

    def dedupe(req: BoltRequest, body: dict[str, Any], next: Callable[[], BoltResponse]):
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not isinstance(event_id, str) or deduper.first(event_id):
            return next()
        retry = _retry_of(req)
        log.info(
            "event %s already handled%s: acknowledged, not answered again",
            event_id,
            f" (retry {retry})" if retry else "",
        )
        return BoltResponse(status=200, body="")

    app.middleware(dedupe)


def _retry_of(req: BoltRequest) -> str:
    """ "1, reason http_timeout" from X-Slack-Retry-Num/-Reason (Bolt's Socket Mode adapter
    copies an envelope's retry_attempt/retry_reason into the same headers)."""
    number = (req.headers.get("x-slack-retry-num") or [""])[0]
    reason = (req.headers.get("x-slack-retry-reason") or [""])[0]
    return f"{number}, reason {reason}" if number and reason else number
