"""A fake Slack Web API on 127.0.0.1 that records every call (like bolt-python's own tests).

Point the real slack_sdk ``WebClient(base_url=server.api_url)`` (or ``SLACK_API_URL``) at it.
It answers the methods the bot uses with plausible payloads, serves ``files.upload``'s
external upload URL and Bolt's ``response_url``, and can be scripted to fail:

    server.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}), Reply(500))

replies are used in order for the next calls of that method, then normal answers resume.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None  # None: the normal answer for the method
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (timeouts)


@dataclass
class Call:
    method: str  # "chat.postMessage", "upload", "response"
    path: str
    headers: dict[str, str]
    params: dict[str, Any]  # form fields or JSON body
    raw: bytes


class FakeSlack(LoopbackServer):
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._scripts: dict[str, list[Reply]] = defaultdict(list)
        self._ts = itertools.count(1)
        self.socket_mode_url: str | None = None  # what apps.connections.open answers
        super().__init__(_handler(self))

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    # -- scripting and inspection -------------------------------------------------------
    def script(self, method: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[method].extend(replies)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._scripts.clear()

    # -- answering ----------------------------------------------------------------------
    def _next_reply(self, method: str) -> Reply | None:
        with self._lock:
            queue = self._scripts.get(method)
            return queue.pop(0) if queue else None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "C0000000001")
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Test",
                "team_id": "T0000001",
                "user": "kvmarm",
                "user_id": "U0BOT0001",
                "bot_id": "B0BOT0001",
            }
        if method == "chat.postMessage":
            ts = f"{1700000000 + next(self._ts)}.000100"
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": params.get("text", ""), "ts": ts},
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method in ("chat.update", "chat.delete"):
            return {"ok": True, "channel": channel, "ts": params.get("ts")}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):08d}"
            return {
                "ok": True,
                "file_id": file_id,
                "upload_url": f"{self.base_url}/upload/{file_id}",
            }
        if method == "files.completeUploadExternal":
            files = params.get("files")
            if isinstance(files, str):
                files = json.loads(files)
            return {
                "ok": True,
                "files": [{"id": f["id"], "title": f.get("title")} for f in files or []],
            }
        if method == "apps.connections.open":
            if self.socket_mode_url is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": self.socket_mode_url}
        if method == "conversations.info":
            return {"ok": True, "channel": {"id": channel, "name": "kvmarm", "is_member": True}}
        return {"ok": True}


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = urllib.parse.urlsplit(self.path).path
            method = _method_of(path)
            params = _parse_body(self.headers.get("Content-Type", ""), raw)
            params.update(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
            fake._record(Call(method, path, dict(self.headers.items()), params, raw))
            reply = fake._next_reply(method) or Reply()
            if reply.delay:
                time.sleep(reply.delay)
            if method in ("upload", "response") and reply.body is None:
                self._send(reply.status, b"OK", "text/plain", reply.headers)
                return
            body = reply.body if reply.body is not None else fake.answer(method, params)
            if reply.status == 429 and reply.body is None:
                body = {"ok": False, "error": "ratelimited"}
            elif reply.status >= 500 and reply.body is None:
                body = {"ok": False, "error": "internal_error"}
            self._send(reply.status, json.dumps(body).encode(), "application/json", reply.headers)

        do_GET = do_POST

        def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _method_of(path: str) -> str:
    if path.startswith("/api/"):
        return path[len("/api/") :]
    if path.startswith("/upload/"):
        return "upload"
    return "response"


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"_": value}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
    return {}
