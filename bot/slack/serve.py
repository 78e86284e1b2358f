"""Running the app: Socket Mode (default, no public URL) or HTTP (``POST /slack/events``).

HTTP mode is a threading WSGI server around Bolt's WSGI adapter; Bolt verifies every
request's signature (``SLACK_SIGNING_SECRET``) and timestamp (≤ 5 minutes old) and answers
401 otherwise, before any listener runs.  Before that, the request handler refuses what Slack
never sends, from the headers alone and without reading the body: a body over 1 MB (413),
no Content-Length or a chunked body (411), a Content-Length that is not a number (400).

Logging (``configure_logging``): one INFO line at start with the mode and where it listens,
one WARNING line per refused request (method, path without query, client, reason, status —
never the body, a token or a ``response_url``).  Slack's SDK loggers stay at INFO even with
``-v``, and every line passes a filter that cuts bodies, response URLs and tokens.
"""

from __future__ import annotations

import logging
import re
import socketserver
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler

from ingest.lore.client import LoreError

EVENTS_PATH = "/slack/events"
MAX_BODY = 1024 * 1024  # Slack's payloads are a few KB
DRAIN_LIMIT = 1024 * 1024 * 1024  # after a 413, discard (never keep) at most this much …
DRAIN_SECONDS = 2.0  # … for at most this long, so the client reads the answer
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


def sync_and_notify(db, config, client, pull: Callable[..., object] | None = None) -> None:
    """One round of keeping Slack live: pull from lore (``pull(db, config)``, default the
    lore sync), then deliver the new events (bot/slack/deliver.py; each exactly once)."""
    from bot.slack.deliver import DeliveryError, deliver_events
    from bot.sync.lore import sync

    (pull or sync)(db, config)
    try:
        report = deliver_events(db, client, lore_url=config.lore_url)
    except DeliveryError as exc:
        log.warning("event delivery stopped, will continue next time: %s", exc)
        return
    if report.events or report.errors:
        log.info("events: %s", report.describe())
    for error in report.errors:
        log.warning("event delivery: %s", error)


class ServeError(Exception):
    """Serving cannot start: a token or secret is missing, or HOST:PORT is invalid."""


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # 50+ concurrent slash commands must not be refused


def refusal(command: str, headers: Any) -> tuple[int, str] | None:
    """Why a request is refused from its headers alone (status, reason), or None."""
    if command != "POST":
        return None  # Bolt answers 404 without reading anything
    if headers.get("Transfer-Encoding"):
        return 411, "chunked body (Slack always sends Content-Length)"
    length = headers.get("Content-Length")
    if length is None:
        return 411, "no Content-Length"
    if not length.strip().isdigit():
        return 400, "Content-Length is not a number"
    if int(length) > MAX_BODY:
        return 413, f"body of {int(length)} bytes is over the {MAX_BODY} byte limit"
    return None


class _SlackRequestHandler(WSGIRequestHandler):
    """wsgiref's handler, refusing oversized or unbounded bodies before the app reads them."""

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        refused = refusal(self.command, self.headers)
        if refused is not None:
            self._refuse(*refused)
            return
        handler = ServerHandler(
            self.rfile,
            self.wfile,  # type: ignore[arg-type]  # a socket writer, as wsgiref's own handle()
            self.get_stderr(),
            self.get_environ(),
            multithread=False,
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def _refuse(self, status: int, reason: str) -> None:
        log_refusal(self.command, self.path, self.client_address[0], reason, status)
        body = f"{status} {reason}\n".encode()
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self._drain()

    def _drain(self) -> None:
        """Discard (never keep) some of the unread body so the client, still sending, gets
        the answer instead of a reset; give up after DRAIN_LIMIT bytes or DRAIN_SECONDS."""
        length = self.headers.get("Content-Length", "")
        left = min(int(length), DRAIN_LIMIT) if length.strip().isdigit() else 0
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while left > 0 and (wait := deadline - time.monotonic()) > 0:
                self.connection.settimeout(wait)
                chunk = self.rfile.read1(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # request lines only
        log.debug("%s %s", self.address_string(), redact(format % args))


def log_refusal(method: str, path: str, client: str, reason: str, status: int) -> None:
    """The one line a refused request gets: no body, no query string (it may hold tokens)."""
    where = urllib.parse.urlsplit(path).path
    log.warning("refused %s %s from %s: %s (%d)", method, where, client, reason, status)


def _log_rejections(app: Callable) -> Callable:
    """WSGI middleware: one line for each answer of 400 or more (bad signature, wrong path)."""

    def wrapped(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info: Any = None) -> Callable:
            code = int(status.split()[0])
            if code >= 400:
                reason = _REASONS.get(code, status.partition(" ")[2] or "refused")
                log_refusal(
                    environ.get("REQUEST_METHOD", "?"),
                    environ.get("PATH_INFO", ""),
                    environ.get("REMOTE_ADDR", "?"),
                    reason,
                    code,
                )
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


_REASONS = {
    401: "invalid or stale signature",
    404: "not " + EVENTS_PATH,
}


# ---- logging ------------------------------------------------------------------------------

_REDACTIONS = (
    (re.compile(r"https://hooks\.slack\.com/\S+"), "[response_url]"),
    (re.compile(r"(response_url['\"]?\s*[:=]\s*['\"]?)[^'\"\s,&}]+"), r"\1[not logged]"),
    (re.compile(r"response_url=[^&\s]+"), "response_url=[not logged]"),
    (re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]+"), r"\1-[redacted]"),
    (re.compile(r"\b((?:raw_)?body|payload)(['\"]?\s*[:=]\s*).*$", re.S), r"\1\2[not logged]"),
    (re.compile(r"\b(message)(['\"]?\s*[:=]\s*)[{\[\'\"].*$", re.S), r"\1\2[not logged]"),
)


def redact(text: str) -> str:
    """``text`` without request bodies, response URLs or tokens."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites every record that reaches the handler through ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def configure_logging(*, debug: bool = False, stream: Any = None) -> logging.Handler:
    """Lines on stderr (or ``stream``): INFO, or DEBUG for kvmarm's own loggers with ``debug``.
    Slack's and HTTP libraries' loggers stay at INFO (their DEBUG lines dump bodies)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("bot", "storage", "ingest"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)
    for name in ("slack_bolt", "slack_sdk", "urllib3", "httpx", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.INFO)
    return handler


def bolt_logger(*, debug: bool = False) -> logging.Logger:
    """The logger handed to Bolt: its components copy this level, WARNING by default, so
    Bolt's own INFO line for a bad signature (which holds the whole body) is not written —
    ``log_refusal`` says it in one line instead."""
    logger = logging.getLogger("bot.slack.bolt")
    logger.setLevel(logging.INFO if debug else logging.WARNING)
    if not any(isinstance(f, _TokenNotice) for f in logger.filters):
        logger.addFilter(_TokenNotice())
    return logger


class _TokenNotice(logging.Filter):
    """Bolt warns "`token` will be unused" whenever SLACK_BOT_TOKEN is in the environment
    and a client is passed — which is how the app is always built; not worth a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def parse_hostport(value: str) -> tuple[str, int]:
    """``"127.0.0.1:3000"`` → ("127.0.0.1", 3000); ``":3000"`` listens on every address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--http wants HOST:PORT, e.g. 127.0.0.1:3000, not {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def make_http_server(app: App, host: str, port: int) -> ThreadingWSGIServer:
    """A started-on-demand server for Bolt at EVENTS_PATH (port 0 picks a free port)."""
    handler = _log_rejections(SlackRequestHandler(app, path=EVENTS_PATH))
    return make_server(
        host, port, handler, server_class=ThreadingWSGIServer, handler_class=_SlackRequestHandler
    )


def run_http(app: App, host: str, port: int) -> None:
    server = make_http_server(app, host, port)
    bound_host, bound_port = server.server_address[:2]
    log.info(
        "kvmarm serve: HTTP mode, listening on http://%s:%s%s (bodies over %d bytes refused)",
        bound_host,
        bound_port,
        EVENTS_PATH,
        MAX_BODY,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


def socket_mode_handler(app: App, app_token: str | None) -> SocketModeHandler:
    if not app_token:
        raise ServeError("Socket Mode needs SLACK_APP_TOKEN (an xapp-… app-level token)")
    return SocketModeHandler(app, app_token)


def run_socket_mode(app: App, app_token: str | None) -> None:
    """Connect (apps.connections.open, then the WebSocket) and serve until interrupted;
    the SDK reconnects by itself when Slack asks it to (``disconnect``) or the link drops."""
    handler = socket_mode_handler(app, app_token)
    log.info("kvmarm serve: Socket Mode, connecting to Slack over a WebSocket (no public URL)")
    handler.connect()
    log.info("kvmarm serve: Socket Mode, connected (session %s)", handler.client.session_id())
    threading.Event().wait()  # what SocketModeHandler.start() does, without its banner


def serve(
    config,
    *,
    http: str | None = None,
    schedule_text: str | None = None,
    channels: tuple[str, ...] = (),
    sync_every: timedelta | None = DEFAULT_SYNC_EVERY,
    debug: bool = False,
) -> None:
    """`kvmarm serve`: build the app from ``config`` and run it until interrupted."""
    from datetime import UTC, datetime

    from bot.commands.summary import llm_summarise
    from bot.digest import make_summariser
    from bot.slack.app import create_app, per_thread
    from bot.slack.client import make_web_client
    from bot.slack.dedupe import EventDeduper
    from bot.slack.digest import DigestGlue
    from bot.slack.schedule import parse_schedule, run_schedule
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
    summariser = make_summariser(config)
    digest = DigestGlue(
        config, client, summariser, db_factory, lambda: datetime.now(UTC), pull=_pull(config)
    )
    app = create_app(
        config,
        client=client,
        db_factory=db_factory,
        digest=digest,
        summarise=llm_summarise(config, summariser=summariser),
        logger=bolt_logger(debug=debug),
        dedupe=EventDeduper(db_factory),  # durable: a retry after a restart is recognised
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
            args=(
                lambda: sync_and_notify(db_factory(), config, client),
                sync_every,
                threading.Event(),
            ),
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
