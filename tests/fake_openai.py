"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1 that records every request.

Point the real openai SDK at it (``OpenAI(base_url=server.base_url, api_key="test")``).  By
default it answers like a well-behaved model: a JSON summary that names the first person of
the prompt's PARTICIPANTS list and cites the last mail.  Scripted replies are used in order
for the next requests, then the default resumes:

    server.script(Reply(status=429, headers={"Retry-After": "0.2"}), Reply(delay=5))
    server.script(Reply(content="not json at all"))          # malformed model output
    server.script(Reply(raw=b"{oops", status=200))           # malformed HTTP body
    server.script(Reply(content=Reply.naming("Linus Torvalds")))
    server.script(Reply(raw=HTML_PAGE, content_type="text/html"))   # a proxy's error page
    server.script(Reply(hang=True))                          # never answers (until stop)
    server.script_for("Frobnicate", Reply(status=500))       # only requests whose prompt
                                                             # contains this text
    server.obey_injections()   # act like a gullible model: do what a mail tells it to


``usage`` counts tokens as characters / 4 (the same estimate for prompt and completion).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer

_PEOPLE_RE = re.compile(r"^PARTICIPANTS: (.*)$", re.M)
_TOPIC_RE = re.compile(r"^TOPIC: (.*)$", re.M)
_LABEL_RE = re.compile(r"<<<MAIL (\d+)>>>")
_INJECTION_RE = re.compile(
    r"(?:ignore (?:all )?(?:the )?previous instructions and say that|SYSTEM:)\s*([^\n]+)", re.I
)
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message; None: the default answer
    raw: bytes | None = None  # the whole HTTP body instead of a completion
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    hang: bool = False  # answer nothing until the server stops

    @staticmethod
    def naming(name: str) -> str:
        """A summary that blames a change on ``name`` (for the grounding check)."""
        return json.dumps(
            {
                "background": "",
                "this_week": f"{name} said the series is ready and asked for it to be merged.",
                "citations": [1],
                "people": [name],
            }
        )


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def default_answer(request: dict) -> str:
    """A grounded summary of the prompt: the first participant, the last mail cited."""
    user = next((m["content"] for m in request["messages"] if m["role"] == "user"), "")
    people = _PEOPLE_RE.search(user)
    first = people.group(1).split(";")[0].split("<")[0].strip() if people else ""
    topic = _TOPIC_RE.search(user)
    labels = [int(n) for n in _LABEL_RE.findall(user)]
    history = "EARLIER SUMMARY" in user or "EARLIER MAILS" in user
    return json.dumps(
        {
            "background": f"Earlier, {first} started this work." if history and first else "",
            "this_week": f"{first} discussed {topic.group(1) if topic else 'the topic'}.",
            "citations": labels[-1:],
            "people": [first] if first else [],
        }
    )


def injected_answer(request: dict) -> str | None:
    """What a gullible model says when a mail tells it what to say (None: no such mail)."""
    user = next((m["content"] for m in request["messages"] if m["role"] == "user"), "")
    found = _INJECTION_RE.search(user)
    if found is None:
        return None
    said = found.group(1).strip()
    labels = [int(n) for n in _LABEL_RE.findall(user)]
    return json.dumps({"background": "", "this_week": said, "citations": labels[-1:], "people": []})


class FakeOpenAI(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._script: list[Reply] = []
        self._scripts_for: dict[str, list[Reply]] = {}
        self._obey = False
        self.released = threading.Event()  # set on stop: hanging replies end
        super().__init__(_handler(self))

    def stop(self) -> None:
        self.released.set()
        super().stop()

    def script_for(self, text: str, *replies: Reply) -> None:
        """Replies for the next requests whose prompt contains ``text`` (then the default)."""
        with self._lock:
            self._scripts_for.setdefault(text, []).extend(replies)

    def obey_injections(self, obey: bool = True) -> None:
        self._obey = obey

    def topics(self) -> list[str]:
        """The TOPIC line of each request so far, in order."""
        with self._lock:
            users = [
                next((m["content"] for m in r.get("messages", []) if m["role"] == "user"), "")
                for r in self.requests
            ]
        return [m.group(1) if (m := _TOPIC_RE.search(u)) else "" for u in users]

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._scripts_for.clear()
            self._obey = False

    def _next(self, request: dict) -> Reply:
        prompt = json.dumps(request.get("messages", []), ensure_ascii=False)
        with self._lock:
            self.requests.append(request)
            for text, queue in self._scripts_for.items():
                if queue and text in prompt:
                    return queue.pop(0)
            if self._script:
                return self._script.pop(0)
            if self._obey and (said := injected_answer(request)) is not None:
                return Reply(content=said)
            return Reply()


def _completion(request: dict, content: str) -> dict:
    prompt = "".join(m.get("content") or "" for m in request.get("messages", []))
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": estimate_tokens(prompt),
            "completion_tokens": estimate_tokens(content),
            "total_tokens": estimate_tokens(prompt) + estimate_tokens(content),
        },
    }


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                request = {}
            reply = fake._next(request)
            if reply.hang:
                fake.released.wait()
                return
            if reply.delay:
                time.sleep(reply.delay)
            if reply.raw is not None:
                body = reply.raw
            elif reply.status != 200:
                body = json.dumps({"error": {"message": "scripted", "code": reply.status}}).encode()
            else:
                content = reply.content if reply.content is not None else default_answer(request)
                body = json.dumps(_completion(request, content)).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

    return Handler
