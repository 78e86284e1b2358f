"""The Slack app end to end: signed requests through ``app.dispatch()`` and through the real
HTTP server, answers posted to a fake Slack Web API on 127.0.0.1, facts from the archive."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.slack.blocks import SHARE_ACTION
from tests.slack_requests import (
    APP_TOKEN,
    BOT_TOKEN,
    CHANNEL,
    SECRET,
    USER,
    action_body,
    app_config,
    build_app,
    command_body,
    dispatch,
    http_server,
    interrupt,
    mention_body,
    post,
    signed_headers,
    wait_for,
)

# (command text, facts the answer must state) — checked against the mail in test_answers.py
FACTS = [
    (
        "thread FEAT_ECV",
        ["Oliver Upton", "b4 shazam", "20210916181555.973085-1-oupton@google.com", "Reviewed-by"],
    ),
    (
        "series MTE support for KVM guest",
        [
            "MTE support for KVM guest",
            "v17",
            "v1 RFC",
            "dropped: arm64: Handle MTE tags zeroing in __alloc_zeroed_user_highpage()",
        ],
    ),
    (
        "who reviewed MTE support for KVM guest",
        ["Catalin Marinas", "Reviewed-by", "v17", "Fuad Tabba"],
    ),
    (
        "who reviewed FEAT_ECV",
        ["Reiji Watanabe", "FEAT_ECV &gt;= 0x2", "Andrew Jones"],
    ),
    ("reviews Andrew Jones", ["Reviews by Andrew Jones", "some fixes for vgic_irq v2"]),
    ("status", ["16652 mails", "2019-04-29", "2022-02-28"]),
    ("thread stollen tyme", ["No series or thread matches", "arm64: Stolen time support"]),
]


@pytest.fixture
def app(fake_slack, archive_path):
    return build_app(app_config(fake_slack, archive_path), token_verification_enabled=False)


def _response_url(fake_slack, n: int = 1) -> str:
    return f"{fake_slack.base_url}/commands/T0000001/{n}/hook"


def _text_of(call) -> str:
    """Everything a posted message says (blocks and fallback text), as sent."""
    return json.dumps(call.params, ensure_ascii=False)


# ---- slash commands through app.dispatch ------------------------------------------------


@pytest.mark.parametrize(("text", "facts"), FACTS, ids=[f[0] for f in FACTS])
def test_command_acks_then_answers_through_response_url(app, fake_slack, text, facts):
    started = time.perf_counter()
    reply = dispatch(app, command_body(text, _response_url(fake_slack)))
    assert reply.status == 200
    assert time.perf_counter() - started < 3.0
    assert reply.body == ""  # the answer follows through respond()
    [call] = wait_for(fake_slack, "response")
    assert call.path == "/commands/T0000001/1/hook"
    assert call.params["response_type"] == "ephemeral"
    said = _text_of(call)
    for fact in facts:
        assert fact in said, fact
    assert call.params["unfurl_links"] is False


def test_answers_offer_share_in_channel(app, fake_slack):
    dispatch(app, command_body("who reviewed FEAT_ECV", _response_url(fake_slack)))
    [call] = wait_for(fake_slack, "response")
    actions = [b for b in call.params["blocks"] if b["type"] == "actions"]
    [button] = actions[0]["elements"]
    assert button["action_id"] == SHARE_ACTION
    assert button["value"] == "who reviewed 20210608214742.1897483-1-oupton@google.com"


def test_help_is_answered_in_the_ack(app, fake_slack):
    reply = dispatch(app, command_body("help", _response_url(fake_slack)))
    assert reply.status == 200
    body = json.loads(reply.body)
    assert body["response_type"] == "ephemeral"
    assert "who reviewed &lt;words&gt;" in json.dumps(body)
    time.sleep(0.3)
    assert fake_slack.calls_to("response") == []


@pytest.mark.parametrize(
    ("text", "said"),
    [("frobnicate", "Unknown command `frobnicate`"), ("thread", "`thread` needs words")],
)
def test_usage_errors_are_ephemeral_and_show_usage(app, fake_slack, text, said):
    reply = dispatch(app, command_body(text, _response_url(fake_slack)))
    assert reply.status == 200
    body = json.loads(reply.body)
    assert body["response_type"] == "ephemeral"
    assert said in json.dumps(body)
    assert "Usage: /kvmarm" in json.dumps(body)
    time.sleep(0.3)
    assert fake_slack.calls_to("response") == []


def test_share_button_posts_in_channel_and_removes_the_ephemeral(app, fake_slack):
    value = "who reviewed 20210608214742.1897483-1-oupton@google.com"
    reply = dispatch(app, action_body(SHARE_ACTION, value, _response_url(fake_slack, 2)))
    assert reply.status == 200
    calls = wait_for(fake_slack, "response", 2)
    shared, deleted = calls
    assert shared.params["response_type"] == "in_channel"
    assert shared.params["replace_original"] is False
    assert "Reiji Watanabe" in _text_of(shared)
    assert not [b for b in shared.params["blocks"] if b["type"] == "actions"]
    assert deleted.params["delete_original"] is True


def test_mention_is_answered_ephemerally_to_who_asked(app, fake_slack):
    """Outside a thread; a mention inside a thread is answered there for everyone
    (tests/test_live_slack.py)."""
    body = mention_body("<@U0BOT0001> who reviewed MTE support for KVM guest")
    reply = dispatch(app, body)
    assert reply.status == 200
    [call] = wait_for(fake_slack, "chat.postEphemeral")
    assert call.params["channel"] == CHANNEL
    assert call.params["user"] == USER
    assert "thread_ts" not in call.params
    assert "Catalin Marinas" in _text_of(call)


def test_mention_with_unknown_words_gets_usage(app, fake_slack):
    dispatch(app, mention_body("<@U0BOT0001> hello there"))
    [call] = wait_for(fake_slack, "chat.postEphemeral")
    assert "Unknown command `hello`" in _text_of(call)


# ---- request verification ---------------------------------------------------------------


def _forged(body: str) -> dict:
    return signed_headers(body, secret="not-the-secret")


def _stale(body: str) -> dict:
    return signed_headers(body, timestamp=int(time.time()) - 6 * 60)


def _unsigned(body: str) -> dict:
    return {"content-type": "application/x-www-form-urlencoded"}


def _no_timestamp(body: str) -> dict:
    headers = signed_headers(body)
    del headers["x-slack-request-timestamp"]
    return headers


BAD_HEADERS = [_forged, _stale, _unsigned, _no_timestamp]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda f: f.__name__.strip("_"))
def test_bad_signatures_get_401_and_nothing_runs(app, fake_slack, headers):
    body = command_body("thread FEAT_ECV", _response_url(fake_slack))
    reply = dispatch(app, body, headers(body))
    assert reply.status == 401
    time.sleep(0.5)
    assert fake_slack.calls == []  # not even auth.test: verification comes first


def test_a_signature_for_another_body_is_refused(app, fake_slack):
    body = command_body("status", _response_url(fake_slack))
    other = command_body("thread FEAT_ECV", _response_url(fake_slack))
    assert dispatch(app, other, signed_headers(body)).status == 401
    time.sleep(0.3)
    assert fake_slack.calls == []


def test_secrets_never_reach_the_logs(app, fake_slack, caplog):
    caplog.set_level(logging.DEBUG)
    dispatch(app, command_body("who reviewed FEAT_ECV", _response_url(fake_slack)))
    wait_for(fake_slack, "response")
    dispatch(app, mention_body("<@U0BOT0001> status"))
    wait_for(fake_slack, "chat.postEphemeral")
    body = command_body("status", _response_url(fake_slack))
    dispatch(app, body, _forged(body))
    assert caplog.records  # Bolt and slack_sdk did log at DEBUG
    for secret in (BOT_TOKEN, SECRET, APP_TOKEN):
        assert secret not in caplog.text
    # the bot token did go out, in the Authorization header, to the Web API
    [call] = fake_slack.calls_to("chat.postEphemeral")
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"


# ---- the real HTTP server ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "facts"), FACTS[:5], ids=[f[0] for f in FACTS[:5]])
def test_http_server_answers_signed_commands(app, fake_slack, text, facts):
    with http_server(app) as url:
        reply = post(url, command_body(text, _response_url(fake_slack)))
        assert reply.status == 200 and reply.seconds < 3.0
        [call] = wait_for(fake_slack, "response")
    said = _text_of(call)
    for fact in facts:
        assert fact in said, fact


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda f: f.__name__.strip("_"))
def test_http_server_refuses_bad_signatures(app, fake_slack, headers):
    body = command_body("thread FEAT_ECV", _response_url(fake_slack))
    with http_server(app) as url:
        reply = post(url, body, headers(body))
        assert reply.status == 401
        time.sleep(0.5)
    assert fake_slack.calls == []


def test_http_server_serves_only_slack_events(app, fake_slack):
    body = command_body("status", _response_url(fake_slack))
    with http_server(app) as url:
        assert post(url.replace("/slack/events", "/other"), body).status == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kvmarm_serve_http_end_to_end(fake_slack, archive_path, tmp_path):
    """`kvmarm serve --http 127.0.0.1:PORT` as a process, configured from the environment."""
    port = _free_port()
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "KVMARM_DB": str(archive_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    env.pop("SLACK_APP_TOKEN", None)
    kvmarm = Path(sys.executable).with_name("kvmarm")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(kvmarm), "serve", "--http", f"127.0.0.1:{port}", "--sync-every", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/slack/events"
        _wait_listening(port, process)
        reply = post(url, command_body("who reviewed FEAT_ECV", _response_url(fake_slack)))
        assert reply.status == 200
        [call] = wait_for(fake_slack, "response")
        assert "Reiji Watanabe" in _text_of(call)
        body = command_body("status", _response_url(fake_slack, 2))
        assert post(url, body, _stale(body)).status == 401
    finally:
        interrupt(process)
    output = log.read_text()
    for secret in (BOT_TOKEN, SECRET):
        assert secret not in output


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "kvmarm serve exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("kvmarm serve did not listen")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "needs SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": ""}, "Socket Mode needs SLACK_APP_TOKEN"),
    ],
)
def test_serve_says_what_is_missing(tmp_path, env, said):
    from click.testing import CliRunner

    from bot.cli import main

    base = {
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_APP_TOKEN": "xapp-x",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "k.db"), "serve"], env={**base, **env}
    )
    assert result.exit_code == 1
    assert said in result.output


def test_serve_http_needs_a_signing_secret(tmp_path):
    from click.testing import CliRunner

    from bot.cli import main

    env = {
        "SLACK_BOT_TOKEN": "xoxb-x",
        "SLACK_SIGNING_SECRET": "",
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "k.db"), "serve", "--http", "127.0.0.1:0"], env=env
    )
    assert result.exit_code == 1
    assert "SLACK_SIGNING_SECRET" in result.output


# ---- construction -----------------------------------------------------------------------


def test_building_the_app_calls_only_auth_test(fake_slack, archive_path):
    build_app(app_config(fake_slack, archive_path))  # token verification on, as in production
    assert [c.method for c in fake_slack.calls] == ["auth.test"]
    assert fake_slack.calls[0].headers["Authorization"] == f"Bearer {BOT_TOKEN}"


def test_socket_mode_handler_is_built_without_connecting(app, fake_slack):
    from bot.slack.serve import ServeError, socket_mode_handler

    handler = socket_mode_handler(app, APP_TOKEN)
    assert handler.app is app and handler.client.app_token == APP_TOKEN
    assert fake_slack.calls == []  # apps.connections.open only on start()
    with pytest.raises(ServeError, match="SLACK_APP_TOKEN"):
        socket_mode_handler(app, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:3000", ("127.0.0.1", 3000)),
        (":8080", ("0.0.0.0", 8080)),
        ("[::1]:9", ("::1", 9)),
    ],
)
def test_hostport(value, expected):
    from bot.slack.serve import parse_hostport

    assert parse_hostport(value) == expected


@pytest.mark.parametrize("value", ["3000", "host:", "host:http", "h:70000"])
def test_bad_hostport(value):
    from bot.slack.serve import ServeError, parse_hostport

    with pytest.raises(ServeError):
        parse_hostport(value)
