"""50 slash commands at once over HTTP on the whole archive: every ack well within 3 s."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.slack_requests import app_config, build_app, command_body, http_server, post, wait_for

COMMANDS = [
    "thread FEAT_ECV",
    "series MTE support for KVM guest",
    "who reviewed MTE support for KVM guest",
    "who reviewed ptp_kvm",
    "reviews Andrew Jones",
    "thread stolen time",
    "series vgic",
    "thread maz@kernel.org",
    "who reviewed Oliver Upton",
    "status",
]
N = 50


def test_fifty_concurrent_commands_ack_within_three_seconds(fake_slack, archive_path):
    app = build_app(app_config(fake_slack, archive_path), token_verification_enabled=False)
    start = threading.Barrier(N)
    with http_server(app) as url:

        def one(i: int):
            body = command_body(COMMANDS[i % len(COMMANDS)], f"{fake_slack.base_url}/r/{i}")
            start.wait()
            return post(url, body)

        with ThreadPoolExecutor(max_workers=N) as pool:
            replies = list(pool.map(one, range(N)))
        answers = wait_for(fake_slack, "response", N, timeout=60)
    assert [r.status for r in replies] == [200] * N
    slowest = max(r.seconds for r in replies)
    print(f"slowest of {N} acks: {slowest:.3f}s")
    assert slowest < 3.0, f"slowest ack {slowest:.2f}s"
    assert sorted(c.path for c in answers) == sorted(f"/r/{i}" for i in range(N))
    for call in answers:
        assert call.params["blocks"], call.path
