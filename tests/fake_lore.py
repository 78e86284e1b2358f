"""A scripted public-inbox stand-in on 127.0.0.1: 429s, 500s, slow or broken answers.

The real server (tests/lore_server.py) cannot be told to fail on cue; this one answers every
request with the next scripted ``Reply`` (the last one repeats) and records what it was
asked, so tests can check retries, Retry-After, timeouts and the User-Agent:

    with FakeLore(Reply(429, headers={"Retry-After": "3"}), Reply(200, mbox_gz(mail))) as lore:
        LoreClient(lore.url, sleep=waits.append).received_between(since)
"""

from __future__ import annotations

import contextlib
import gzip
import re
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (client timeouts)
    cut: int | None = None  # send only this many body bytes, then hang up


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes


class FakeLore(LoopbackServer):
    def __init__(self, *replies: Reply) -> None:
        self.requests: list[Seen] = []
        self._replies = list(replies) or [Reply(404, b"No results found")]
        super().__init__(_handler(self))

    @property
    def url(self) -> str:
        return self.origin + "/kvmarm"

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            return self._replies.pop(0) if len(self._replies) > 1 else self._replies[0]


def _handler(fake: FakeLore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()), body)
            reply = fake._next(seen)
            time.sleep(reply.delay)
            with contextlib.suppress(OSError):  # the client may have timed out and gone
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body[: reply.cut])
                if reply.cut is not None:
                    self.close_connection = True

        do_GET = do_POST = do_HEAD = _answer

    return Handler


_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)


def mbox_gz(*mails: bytes) -> bytes:
    """Mails as public-inbox serves them: gzip'ed mboxrd with ``From mboxrd@z`` lines."""
    parts = []
    for mail in mails:
        body = _FROM_LINE.sub(rb">\1", mail.replace(b"\r\n", b"\n"))
        parts.append(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + body.rstrip(b"\n") + b"\n\n")
    return gzip.compress(b"".join(parts))


def mail(
    msgid: str,
    subject: str = "[PATCH] KVM: arm64: a test patch",
    *,
    sender: str = "Dev Eloper <dev@example.org>",
    date: str = "Tue, 01 Sep 2020 10:00:00 +0000",
    received: str | None = "Tue, 01 Sep 2020 10:00:05 +0000",
    refs: tuple[str, ...] = (),
    body: str = "Hello.\n",
) -> bytes:
    """A small RFC 822 mail for the fake server."""
    lines = []
    if received is not None:
        lines.append(f"Received: from mail.example.org by lore.example.org; {received}")
    lines += [f"From: {sender}", f"Subject: {subject}", f"Date: {date}", f"Message-ID: <{msgid}>"]
    if refs:
        lines.append(f"In-Reply-To: <{refs[-1]}>")
        lines.append("References: " + " ".join(f"<{r}>" for r in refs))
    lines += ["List-Id: <kvmarm.lists.linux.dev>", "", body]
    return "\n".join(lines).encode()
