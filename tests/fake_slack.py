"""A fake Slack Web API on 127.0.0.1 that records every call (like bolt-python's own tests).

Point the real slack_sdk ``WebClient(base_url=server.api_url)`` (or ``SLACK_API_URL``) at it.
It answers the methods the bot uses with plausible payloads, serves ``files.upload``'s
external upload URL and Bolt's ``response_url``, and keeps what was posted, so that
``conversations.history`` / ``conversations.replies`` return it (with its metadata when asked
with ``include_all_metadata``) — like Slack, a message is posted as soon as the request
arrived, before the answer is sent.  A file completed into a thread shows there as a reply
carrying ``files``.

It can be scripted to fail, per method; replies are used in order for the next calls of that
method, then normal answers resume:

    server.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}), Reply(500))
    server.script("chat.postMessage", Reply(502, accept=True))   # posted, then answered 502
    held = Reply(hold=True)                                        # posted, answer withheld
    server.script("chat.postMessage", held); held.arrived.wait(); ...; held.release()
    server.script("chat.postMessage", Reply(drop=True))           # connection closed, no answer

``scopes``: when given, a method needing a scope the app was not granted answers
``missing_scope`` (like a workspace that installed an older manifest).  ``private``: channel
ids that are private (``conversations.join`` is refused; history needs ``groups:history``).
``members``: channels the bot is in; ``files.completeUploadExternal`` into any other channel
answers ``not_in_channel``, as does ``chat.postMessage`` into a private one.  ``files.info``
lists where a completed file is shared; ``hide_files_in_threads`` makes thread replies leave
file shares out (so a lookup must not depend on them alone).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer

WRITES = {"chat.postMessage", "files.completeUploadExternal"}

# The scope each method needs (Slack's docs); history/replies differ for private channels.
SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "conversations.join": "channels:join",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "conversations.info": "channels:read",
    "files.info": "files:read",
    "files.list": "files:read",
}


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | None = None  # None: the normal answer for the method
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (timeouts)
    accept: bool | None = None  # does a write take effect? (default: only when status < 400)
    hold: bool = False  # withhold the answer until release() (a call "in flight")
    drop: bool = False  # close the connection without an answer
    arrived: threading.Event = field(default_factory=threading.Event, repr=False)
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    def release(self) -> None:
        self.released.set()

    @property
    def accepted(self) -> bool:
        if self.accept is not None:
            return self.accept
        return self.status < 400 and (self.body is None or self.body.get("ok", True))


@dataclass
class Call:
    method: str  # "chat.postMessage", "upload", "response"
    path: str
    headers: dict[str, str]
    params: dict[str, Any]  # form fields or JSON body
    raw: bytes
    answer: dict[str, Any] | None = None  # what the fake answered (e.g. a posted message's ts)


class FakeSlack(LoopbackServer):
    def __init__(
        self,
        *,
        scopes: Iterable[str] | None = None,
        private: Iterable[str] = (),
        members: Iterable[str] | None = None,
        hide_files_in_threads: bool = False,
        drop_metadata: bool = False,
    ) -> None:
        self.calls: list[Call] = []
        self.posted: list[dict[str, Any]] = []  # every message Slack accepted, in order
        self.scopes = set(scopes) if scopes is not None else None
        self.private = set(private)
        self.members = set(members) if members is not None else None  # None: everywhere
        self.hide_files_in_threads = hide_files_in_threads
        self.drop_metadata = drop_metadata  # history never shows metadata (an older Slack)
        self._scripts: dict[str, list[Reply]] = defaultdict(list)
        self._ts = itertools.count(1)
        self._held: list[Reply] = []
        self._last_ts = 0.0
        self.socket_mode_url: str | None = None  # what apps.connections.open answers
        super().__init__(_handler(self))

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def stop(self) -> None:
        for reply in self._held:
            reply.release()
        super().stop()

    # -- scripting and inspection -------------------------------------------------------
    def script(self, method: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[method].extend(replies)
            self._held.extend(r for r in replies if r.hold)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._scripts.clear()

    def parents(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages that were posted (and so are visible in the channel)."""
        return [
            m
            for m in self.posted
            if not m.get("thread_ts") and channel in (None, m["channel"]) and not m.get("files")
        ]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        """What a thread shows: its replies and the files shared into it, in order."""
        return [m for m in self.posted if m.get("thread_ts") == ts]

    # -- answering ----------------------------------------------------------------------
    def _next_reply(self, method: str) -> Reply | None:
        with self._lock:
            queue = self._scripts.get(method)
            return queue.pop(0) if queue else None

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def refusal(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """Slack's answer when the app lacks the scope or the channel membership."""
        channel = params.get("channel") or params.get("channel_id") or ""
        needed = SCOPES.get(method)
        if needed == "channels:history" and channel in self.private:
            needed = "groups:history"
        if self.scopes is not None and needed and needed not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": needed}
        if method == "conversations.join" and channel in self.private:
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        outside = self.members is not None and channel not in self.members
        if outside and (
            method == "files.completeUploadExternal"
            or (channel in self.private and method in SCOPES)
        ):
            return {"ok": False, "error": "not_in_channel"}
        return None

    def accept(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Carry out a write (before answering it): post the message, share the file."""
        with self._lock:
            ts = self._now_ts()
            channel = params.get("channel") or params.get("channel_id")
            if method == "chat.postMessage":
                message = {
                    "ts": ts,
                    "channel": channel,
                    "thread_ts": params.get("thread_ts"),
                    "text": params.get("text", ""),
                    "blocks": params.get("blocks"),
                    "metadata": params.get("metadata"),
                }
            else:
                files = params.get("files")
                if isinstance(files, str):
                    files = json.loads(files)
                message = {
                    "ts": ts,
                    "channel": channel,
                    "thread_ts": params.get("thread_ts"),
                    "files": [{"id": f["id"], "title": f.get("title")} for f in files or []],
                }
            self.posted.append(message)
            return message

    def _shown(self, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """A message as history shows it: metadata only with include_all_metadata."""
        shown = {k: v for k, v in message.items() if v is not None and k != "metadata"}
        wanted = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        if wanted and message.get("metadata") and not self.drop_metadata:
            shown["metadata"] = message["metadata"]
        return shown

    def _file_info(self, file_id: str) -> dict[str, Any]:
        """files.info: the file and where it is shared (``shares``), once it was completed."""
        shared = [m for m in self.posted if any(f["id"] == file_id for f in m.get("files") or [])]
        if not shared:
            return {"ok": False, "error": "file_not_found"}
        shares: dict[str, dict[str, list[dict[str, Any]]]] = {"public": {}, "private": {}}
        for m in shared:
            kind = "private" if m["channel"] in self.private else "public"
            shares[kind].setdefault(m["channel"], []).append(
                {"ts": m["ts"], "thread_ts": m.get("thread_ts")}
            )
        return {"ok": True, "file": {"id": file_id, "shares": shares}}

    def _now_ts(self) -> str:
        """A message ts like Slack's: the time it was posted, unique in the workspace."""
        self._last_ts = max(time.time(), self._last_ts + 0.001)
        return f"{self._last_ts:.6f}"

    def answer(
        self, method: str, params: dict[str, Any], done: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        channel = params.get("channel") or params.get("channel_id") or "C0000000001"
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
            ts = done["ts"] if done else f"{1700000000 + next(self._ts)}.000100"
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
            files = done["files"] if done else []
            return {"ok": True, "files": files}
        if method == "apps.connections.open":
            if self.socket_mode_url is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": self.socket_mode_url}
        if method == "conversations.info":
            return {"ok": True, "channel": {"id": channel, "name": "kvmarm", "is_member": True}}
        if method == "conversations.join":
            if self.members is not None:
                self.members.add(channel)
            return {"ok": True, "channel": {"id": channel, "is_member": True}}
        if method == "conversations.history":
            oldest = float(params.get("oldest") or 0)
            found = [
                m
                for m in self.posted
                if m["channel"] == channel and not m.get("thread_ts") and float(m["ts"]) >= oldest
            ]
            return {"ok": True, "messages": [self._shown(m, params) for m in reversed(found)]}
        if method == "files.info":
            return self._file_info(params.get("file", ""))
        if method == "conversations.replies":
            ts = params.get("ts")
            found = [m for m in self.posted if m["ts"] == ts or m.get("thread_ts") == ts]
            if self.hide_files_in_threads:
                found = [m for m in found if not m.get("files")]
            return {"ok": True, "messages": [self._shown(m, params) for m in found]}
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
            call = Call(method, path, dict(self.headers.items()), params, raw)
            fake._record(call)
            reply = fake._next_reply(method) or Reply()
            refused = fake.refusal(method, params) if method.count(".") else None
            done = None
            if method in WRITES and refused is None and reply.accepted:
                done = fake.accept(method, params)
            reply.arrived.set()
            if reply.hold:
                reply.released.wait()
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.connection.close()
                return
            if method in ("upload", "response") and reply.body is None:
                self._send(reply.status, b"OK", "text/plain", reply.headers)
                return
            if reply.body is not None:
                body = reply.body
            elif reply.status == 429:
                body = {"ok": False, "error": "ratelimited"}
            elif reply.status >= 500:
                body = {"ok": False, "error": "internal_error"}
            else:
                body = refused or fake.answer(method, params, done)
            call.answer = body
            self._send(reply.status, json.dumps(body).encode(), "application/json", reply.headers)

        do_GET = do_POST

        def _send(self, status: int, data: bytes, ctype: str, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client is gone (killed while its call was held)
                self.close_connection = True

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
