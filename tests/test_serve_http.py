"""`kvmarm serve --http` at its edges, as a process with real sockets: the start-up line,
oversized and unbounded bodies refused from the headers (time and the server's peak RSS
measured), one log line per refused request and never a body, a response_url or a token,
and an Events API retry answered once — also after a restart."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.slack.serve import MAX_BODY, redact, refusal
from storage.db import open_db
from tests.fake_slack import FakeSlack
from tests.slack_requests import (
    BOT_TOKEN,
    SECRET,
    command_body,
    interrupt,
    mention_body,
    post,
    signed_headers,
    wait_for,
)

MB = 1024 * 1024


class Stderr:
    """The lines a process writes, read on a thread; ``wait_for`` blocks until one matches."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            self._new.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in:\n{''.join(self.lines)}")

    @property
    def text(self) -> str:
        return "".join(self.lines)


@contextmanager
def serving(fake: FakeSlack, db_path: Path, *extra: str) -> Iterator[tuple[str, int, Stderr]]:
    """`kvmarm serve --http 127.0.0.1:0`-like process; yields (events URL, pid, stderr)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "KVMARM_DB": str(db_path),
        "XDG_CONFIG_HOME": str(db_path.parent),
    }
    env.pop("SLACK_APP_TOKEN", None)
    kvmarm = Path(sys.executable).with_name("kvmarm")
    process = subprocess.Popen(
        [str(kvmarm), "serve", "--http", f"127.0.0.1:{port}", "--sync-every", "0", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    err = Stderr(process.stderr)
    try:
        err.wait_for("listening on")
        yield f"http://127.0.0.1:{port}/slack/events", process.pid, err
    finally:
        interrupt(process)


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def send_raw(url: str, head: str, body_size: int) -> tuple[str, float]:
    """Send ``head`` then up to ``body_size`` zero bytes on a thread; return the status line
    of the answer and the seconds until it came (the client keeps sending meanwhile)."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    start = time.monotonic()
    sock.sendall(head.encode())

    def send_body() -> None:
        chunk = b"\0" * MB
        sent = 0
        try:
            while sent < body_size:
                sock.sendall(chunk[: min(MB, body_size - sent)])
                sent += MB
        except OSError:
            pass  # the server closed: it is not reading the rest

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    finally:
        elapsed = time.monotonic() - start
        sock.close()
    return answer.split(b"\r\n")[0].decode(), elapsed


@pytest.fixture
def db_path(tmp_path) -> Path:
    path = tmp_path / "kvmarm.db"
    open_db(path).close()
    return path


def refused_with(method: str, headers: dict[str, str]) -> int:
    """The HTTP status a request with these headers is refused with (fails if accepted)."""
    refused = refusal(method, headers)
    assert refused is not None, (method, headers)
    return refused[0]


def test_refusals_from_headers():
    assert refusal("POST", {"Content-Length": "2000"}) is None
    assert refused_with("POST", {"Content-Length": str(MAX_BODY + 1)}) == 413
    assert refused_with("POST", {"Transfer-Encoding": "chunked"}) == 411
    assert refused_with("POST", {}) == 411
    assert refused_with("POST", {"Content-Length": "-1"}) == 400
    assert refusal("GET", {}) is None


def test_redaction():
    line = (
        "Invalid request signature detected (signature: v0=abc, timestamp: 1, body: "
        "token=x&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F2%2Fsecret)"
    )
    assert "hooks" not in redact(line) and "secret" not in redact(line)
    assert redact('{"response_url": "https://hooks.slack.com/x/y"}').count("hooks") == 0
    assert redact("token xoxb-1234-abcd and xapp-1-A1-zz") == (
        "token xoxb-[redacted] and xapp-[redacted]"
    )
    assert redact("cannot post message: channel_not_found") == (
        "cannot post message: channel_not_found"
    )


def test_serve_http_refuses_big_bodies_logs_once_and_answers_retries_once(fake_slack, db_path):
    with serving(fake_slack, db_path) as (url, pid, err):
        start_line = err.wait_for("listening on")
        assert "HTTP mode, listening on http://127.0.0.1:" in start_line
        assert "/slack/events" in start_line and "INFO" in start_line

        # 50 MB POST: refused from its headers, quickly, without growing the server
        before = peak_rss(pid)
        head = (
            "POST /slack/events?token=xoxb-in-the-url HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {50 * MB}\r\n\r\n"
        )
        status, seconds = send_raw(url, head, 50 * MB)
        grown = peak_rss(pid) - before
        print(f"50 MB POST: {status!r} in {seconds:.3f} s; server peak RSS grew {grown} bytes")
        assert status.split(" ", 1)[1] == "413 Request Entity Too Large"
        assert seconds < 2.0 and grown < 50 * MB
        line = err.wait_for("(413)")
        assert "refused POST /slack/events from 127.0.0.1" in line
        assert "xoxb" not in line and "token" not in line

        # a client that sends all of it before reading (urllib) gets the 413 too
        naive = post(url, "x" * (50 * MB), {"content-type": "application/json"})
        assert naive.status == 413 and naive.seconds < 2.0
        assert peak_rss(pid) - before < 50 * MB

        # a chunked body is never read either
        chunked = (
            "POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n"
        )
        status, _ = send_raw(url, chunked, 4 * MB)
        assert status.split(" ", 1)[1].startswith("411")
        err.wait_for("chunked body")

        # a bad signature: one line, no body, no response_url
        hook = f"{fake_slack.base_url}/commands/T0000001/9/hook-secret"
        body = command_body("status", hook)
        assert post(url, body, signed_headers(body, secret="wrong")).status == 401
        err.wait_for("invalid or stale signature (401)")
        refused = [line for line in err.lines if "refused POST" in line]
        assert len(refused) == 4

        # the same event twice (Slack's retry): acknowledged twice, answered once
        event = mention_body("<@U0BOT0001> status")
        assert post(url, event).status == 200
        wait_for(fake_slack, "chat.postEphemeral", 1)
        retry = {**signed_headers(event), "x-slack-retry-num": "1"}
        retry["x-slack-retry-reason"] = "http_timeout"
        reply = post(url, event, retry)
        assert reply.status == 200
        err.wait_for("event Ev0001 already handled (retry 1, reason http_timeout)")
        another = event.replace("Ev0001", "Ev0002")
        assert post(url, another).status == 200
        wait_for(fake_slack, "chat.postEphemeral", 2)
        assert len(fake_slack.calls_to("chat.postEphemeral")) == 2  # Ev0001 once, Ev0002 once
    for secret in (BOT_TOKEN, SECRET, "hook-secret", "xoxb-in-the-url"):
        assert secret not in err.text

    # after a restart the retry is still recognised (the slack_events table)
    fake_slack.reset()
    with serving(fake_slack, db_path) as (url, _, err):
        retry = {**signed_headers(event), "x-slack-retry-num": "2"}
        assert post(url, event, retry).status == 200
        err.wait_for("event Ev0001 already handled (retry 2)")
        assert post(url, event.replace("Ev0001", "Ev0003")).status == 200
        wait_for(fake_slack, "chat.postEphemeral", 1)
        assert len(fake_slack.calls_to("chat.postEphemeral")) == 1


def test_debug_logging_never_shows_bodies_or_response_urls(fake_slack, db_path):
    with serving(fake_slack, db_path, "--verbose") as (url, _, err):
        hook = f"{fake_slack.base_url}/commands/T0000001/7/hook-secret"
        body = command_body("status", hook)
        assert post(url, body, signed_headers(body, secret="wrong")).status == 401
        err.wait_for("(401)")
        assert post(url, body).status == 200
        wait_for(fake_slack, "response", 1)
        assert post(url, command_body("status", hook)).status == 200
        wait_for(fake_slack, "response", 2)
        err.wait_for("DEBUG")  # debug lines are on
    assert "hook-secret" not in err.text and "T0000001%2F7" not in err.text
    assert "user_name=asker" not in err.text  # no form body
    assert BOT_TOKEN not in err.text and SECRET not in err.text
