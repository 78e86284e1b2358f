"""A loopback Socket Mode endpoint (what ``apps.connections.open`` hands out), like the mock
server of slack-sdk's own tests: a WebSocket server on 127.0.0.1 (``websockets``, a test
dependency) that greets each connection with ``hello``, sends the envelopes a test gives it
and collects what the app sends back (acks by ``envelope_id``).  Waiting is on queues with
timeouts, never on sleeps."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any, Self

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.connections: queue.Queue[ServerConnection] = queue.Queue()
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self._current: ServerConnection | None = None
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=fake-ticket"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    def _handle(self, ws: ServerConnection) -> None:
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0KVMARM"}}
        ws.send(json.dumps(hello))
        self.connections.put(ws)
        try:
            for message in ws:  # until the client closes this connection
                self.received.put(json.loads(message))
        except ConnectionClosed:
            pass  # the client went away without a close frame (a process stopped)

    def wait_connected(self, timeout: float = 20.0) -> ServerConnection:
        self._current = self.connections.get(timeout=timeout)
        return self._current

    def send(self, envelope: dict[str, Any]) -> None:
        assert self._current is not None, "no connection yet"
        self._current.send(json.dumps(envelope))

    def wait_ack(self, envelope_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The app's answer to ``envelope_id`` (other messages are kept for later)."""
        others = []
        try:
            while True:
                message = self.received.get(timeout=timeout)
                if message.get("envelope_id") == envelope_id:
                    return message
                others.append(message)
        finally:
            for message in others:
                self.received.put(message)
