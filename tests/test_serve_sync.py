"""`kvmarm serve` keeps the database fresh and pulls a week before posting it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from bot.slack.serve import sync_forever
from ingest.lore.client import LoreUnreachable


def test_sync_forever_survives_lore_being_down() -> None:
    stop = threading.Event()
    calls: list[str] = []

    def run_sync() -> None:
        calls.append("sync")
        if len(calls) == 1:
            raise LoreUnreachable("connection refused", url="http://127.0.0.1:9/kvmarm")
        if len(calls) == 3:
            stop.set()

    sync_forever(run_sync, timedelta(milliseconds=1), stop)
    assert calls == ["sync", "sync", "sync"]


def test_weekly_job_pulls_the_week_before_posting(tmp_path, fake_slack) -> None:
    from bot.config import load_config
    from bot.digest.extractive import ExtractiveSummariser
    from bot.slack.client import make_web_client
    from bot.slack.digest import DigestGlue
    from storage.db import open_db

    pulled: list[str] = []
    config = load_config(
        {
            "KVMARM_DB": str(tmp_path / "k.db"),
            "KVMARM_CHANNEL": "C1",
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": fake_slack.api_url,
        }
    )
    glue = DigestGlue(
        config,
        client=make_web_client(config),
        summariser=ExtractiveSummariser(),
        db_factory=lambda: open_db(tmp_path / "k.db"),
        now=lambda: datetime(2022, 2, 14, 1, tzinfo=UTC),
        pull=lambda db, period: pulled.append(period.key),
    )
    glue.weekly_job(("C1",))(datetime(2022, 2, 14, 1, tzinfo=UTC))  # empty week: not posted
    assert pulled == ["2022-W06"]
    assert fake_slack.calls_to("chat.postMessage") == []
