"""Signed Slack requests for tests (what Slack sends to the app), and a running app.

Like bolt-python's own tests: real signatures from the signing secret, real bodies
(form-encoded slash commands and block actions, JSON events).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.config import Config, load_config
from bot.slack.app import create_app, per_thread
from bot.slack.client import make_web_client
from bot.slack.serve import make_http_server
from storage.db import open_db
from tests.fake_slack import FakeSlack
from tests.loopback import POLL_INTERVAL

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-1234-5678-secret-bot-token"
APP_TOKEN = "xapp-1-A111-secret-app-token"
CHANNEL = "C0KVMARM01"
USER = "U0ASKER001"


def app_config(fake: FakeSlack, db_path: Path, **extra: str) -> Config:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "KVMARM_DB": str(db_path),
        "KVMARM_CHANNEL": CHANNEL,
        "XDG_CONFIG_HOME": "/nonexistent",  # no developer config file leaks in
        **extra,
    }
    return load_config(env)


def build_app(config: Config, **kwargs) -> App:
    return create_app(
        config,
        client=make_web_client(config),
        db_factory=per_thread(lambda: open_db(config.db, readonly=True)),
        **kwargs,
    )


def signed_headers(body: str, *, timestamp: int | None = None, secret: str = SECRET) -> dict:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
    }


def command_body(text: str, response_url: str, *, command: str = "/kvmarm") -> str:
    return urllib.parse.urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0000001",
            "team_domain": "example",
            "channel_id": CHANNEL,
            "channel_name": "kvmarm",
            "user_id": USER,
            "user_name": "asker",
            "command": command,
            "text": text,
            "api_app_id": "A0KVMARM",
            "response_url": response_url,
            "trigger_id": "1.2.3",
        }
    )


def action_body(action_id: str, value: str, response_url: str, *, channel: str = CHANNEL) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0000001", "domain": "example"},
        "user": {"id": USER, "name": "asker", "team_id": "T0000001"},
        "api_app_id": "A0KVMARM",
        "token": "legacy-verification-token",
        "container": {"type": "message", "is_ephemeral": True, "channel_id": channel},
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "kvmarm"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": "1700000000.000001",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def mention_body(text: str, *, thread_ts: str | None = None) -> str:
    event = {
        "type": "app_mention",
        "user": USER,
        "text": text,
        "ts": "1700000000.000100",
        "channel": CHANNEL,
        "event_ts": "1700000000.000100",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": "T0000001",
            "api_app_id": "A0KVMARM",
            "event": event,
            "type": "event_callback",
            "event_id": "Ev0001",
            "event_time": 1700000000,
            "authorizations": [{"team_id": "T0000001", "user_id": "U0BOT0001", "is_bot": True}],
        }
    )


def dispatch(app: App, body: str, headers: dict | None = None):
    """Bolt's own entry point with a signed request (content type from the body)."""
    headers = dict(headers if headers is not None else signed_headers(body))
    if body.startswith("{"):
        headers["content-type"] = "application/json"
    return app.dispatch(BoltRequest(body=body, headers=headers))


@dataclass
class HttpReply:
    status: int
    body: str
    seconds: float


def post(url: str, body: str, headers: dict | None = None) -> HttpReply:
    headers = dict(headers if headers is not None else signed_headers(body))
    if body.startswith("{"):
        headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return HttpReply(reply.status, reply.read().decode(), time.perf_counter() - start)
    except urllib.error.HTTPError as err:
        return HttpReply(err.code, err.read().decode(), time.perf_counter() - start)


@contextmanager
def http_server(app: App) -> Iterator[str]:
    """The app behind the real threading WSGI server on 127.0.0.1; yields the events URL."""
    server = make_http_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert isinstance(host, str), host  # an AF_INET server
        yield f"http://{host}:{port}/slack/events"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(fake: FakeSlack, method: str, count: int = 1, timeout: float = 20.0) -> list:
    """The calls to ``method`` once there are ``count`` of them (lazy listeners run later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = fake.calls_to(method)
        if len(calls) >= count:
            return calls
        time.sleep(0.02)
    raise AssertionError(f"{method}: {len(fake.calls_to(method))} calls, wanted {count}")


def interrupt(process: subprocess.Popen) -> None:
    """Stop a `kvmarm serve` child as Ctrl-C would; kill it if it has not ended in 10 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
