"""Running the app: Socket Mode (default, no public URL) or HTTP (``POST /slack/events``).

HTTP mode is a threading WSGI server around Bolt's WSGI adapter; Bolt verifies every
request's signature (``SLACK_SIGNING_SECRET``) and timestamp (≤ 5 minutes old) and answers
401 otherwise, before any listener runs.
"""

from __future__ import annotations

import logging
import socketserver
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from ingest.lore.client import LoreError

EVENTS_PATH = "/slack/events"
log = logging.getLogger(__name__)


DEFAULT_SYNC_EVERY = timedelta(hours=1)


def _pull(config) -> Callable:
    """Pull a week's mail from lore before it is posted (a day early: received vs Date)."""
    from bot.sync.lore import sync

    def pull(db, period) -> None:
        sync(db, config, since=period.since - timedelta(days=1))

    return pull


def sync_forever(run_sync: Callable[[], object], every: timedelta, stop: threading.Event) -> None:
    """Keep the database fresh for slash commands: sync, wait ``every``, repeat.  A failing
    sync (lore down) is logged and tried again next time; nothing half-written stays."""
    while not stop.is_set():
        try:
            run_sync()
        except (LoreError, OSError, sqlite3.Error) as exc:
            log.warning("sync from lore failed, will retry in %s: %s", every, exc)
        stop.wait(every.total_seconds())


class ServeError(Exception):
    """Serving cannot start: a token or secret is missing, or HOST:PORT is invalid."""


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # 50+ concurrent slash commands must not be refused


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # request lines only
        log.debug("%s %s", self.address_string(), format % args)


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:3000"`` → ("127.0.0.1", 3000); ``":3000"`` listens on every address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--http wants HOST:PORT, e.g. 127.0.0.1:3000, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def make_http_server(app: App, host: str, port: int) -> ThreadingWSGIServer:
    """A started-on-demand server for Bolt at EVENTS_PATH (port 0 picks a free port)."""
    handler = SlackRequestHandler(app, path=EVENTS_PATH)
    return make_server(
        host, port, handler, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
    )


def run_http(app: App, host: str, port: int) -> None:
    server = make_http_server(app, host, port)
    bound_host, bound_port = server.server_address[:2]
    log.info("serving Slack events on http://%s:%s%s", bound_host, bound_port, EVENTS_PATH)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def socket_mode_handler(app: App, app_token: str | None) -> SocketModeHandler:
    if not app_token:
        raise ServeError("Socket Mode needs SLACK_APP_TOKEN (an xapp-… app-level token)")
    return SocketModeHandler(app, app_token)


def run_socket_mode(app: App, app_token: str | None) -> None:
    socket_mode_handler(app, app_token).start()


def serve(
    config,
    *,
    http: str | None = None,
    schedule_text: str | None = None,
    channels: tuple[str, ...] = (),
    sync_every: timedelta | None = DEFAULT_SYNC_EVERY,
) -> None:
    """`kvmarm serve`: build the app from ``config`` and run it until interrupted."""
    from datetime import UTC, datetime

    from bot.commands.summary import llm_summarize
    from bot.digest import make_summarizer
    from bot.slack.app import create_app, per_thread
    from bot.slack.client import make_web_client
    from bot.slack.digest import DigestGlue
    from bot.slack.schedule import parse_schedule, run_schedule
    from bot.sync.lore import sync
    from storage.db import open_db

    if not config.slack_bot_token:
        raise ServeError("serve needs SLACK_BOT_TOKEN (the xoxb-… bot token)")
    hostport = parse_hostport(http) if http else None
    if hostport and not config.slack_signing_secret:
        raise ServeError("--http needs SLACK_SIGNING_SECRET to verify Slack's requests")
    if not hostport and not config.slack_app_token:
        raise ServeError("Socket Mode needs SLACK_APP_TOKEN (or use --http HOST:PORT)")
    schedule = parse_schedule(schedule_text) if schedule_text else None
    targets = _digest_channels(config, channels) if schedule else ()
    open_db(config.db).close()  # create the file and apply migrations once, up front
    client = make_web_client(config)
    db_factory = per_thread(lambda: open_db(config.db))
    summarizer = make_summarizer(config)
    digest = DigestGlue(
        config, client, summarizer, db_factory, lambda: datetime.now(UTC), pull=_pull(config)
    )
    app = create_app(
        config,
        client=client,
        db_factory=db_factory,
        digest=digest,
        summarize=llm_summarize(config, summarizer=summarizer),
    )
    if schedule is not None:
        thread = threading.Thread(
            target=run_schedule,
            args=(schedule, digest.weekly_job(targets)),
            name="kvmarm-schedule",
            daemon=True,
        )
        thread.start()
        log.info("weekly digest: %s to %s", schedule.describe(), ", ".join(targets))
    if sync_every:
        threading.Thread(
            target=sync_forever,
            args=(lambda: sync(db_factory(), config), sync_every, threading.Event()),
            name="kvmarm-sync",
            daemon=True,
        ).start()
        log.info("syncing from %s every %s", config.lore_url, sync_every)
    if hostport:
        run_http(app, *hostport)
    else:
        run_socket_mode(app, config.slack_app_token)


def _digest_channels(config, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Channels for the weekly post: --channel, else KVMARM_CHANNEL; each must be allowed."""
    chosen = channels or ((config.channel,) if config.channel else ())
    if not chosen:
        raise ServeError("--schedule needs a channel: --channel C… or KVMARM_CHANNEL")
    allowed = config.allowed_channels
    refused = [c for c in chosen if c not in allowed]
    if refused:
        raise ServeError(
            f"channel(s) {', '.join(refused)} may not receive digests: add them to "
            "KVMARM_CHANNEL or KVMARM_CHANNELS"
        )
    return tuple(chosen)
