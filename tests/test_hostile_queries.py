"""300 random and hostile queries: nothing raises, every reply is escaped and within limits."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest

from bot.commands.answers import Sources
from bot.commands.render_text import render_text
from bot.slack.app import Deps, per_thread
from bot.slack.replies import reply_for_text
from storage.db import open_db
from tests.slack_requests import app_config, build_app, command_body, dispatch, wait_for

SEED = 20220207
COUNT = 300
PIECES = [
    # FTS5 syntax
    "AND",
    "OR",
    "NOT",
    "NEAR(",
    "NEAR/2",
    ")",
    "(",
    "*",
    "^",
    ":",
    "-",
    "+",
    '"',
    "'",
    "{",
    "}",
    "[",
    "]",
    "subject:",
    "body : x",
    '"unbalanced',
    "a*b",
    "*FEAT",
    "col:(",
    # Slack markup and mentions
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U024BE7LH>",
    "<#C024BE7LR|general>",
    "<!subteam^S1|team>",
    "&amp;",
    "&lt;",
    "&gt;",
    "<https://evil.example|lore>",
    "<mailto:maz@kernel.org|maz@kernel.org>",
    "*bold*",
    "_it_",
    "~s~",
    "`code`",
    "```",
    # SQL
    "'; DROP TABLE messages; --",
    "1=1",
    "%",
    "_",
    "\\",
    "/*",
    "*/",
    # Unicode
    "ünïcödé",
    "日本語",
    "中文邮件",
    "🙂",
    "\u200b",
    "\u202e",
    "e\u0301",
    "ß",
    "İ",
    "\ufeff",
    # real words and ids
    "FEAT_ECV",
    "vgic",
    "Marc",
    "maz@kernel.org",
    "stolen",
    "MTE",
    "20210916181510.963449-6-oupton@google.com",
    "<20210916181510.963449-6-oupton@google.com>",
    "https://lore.kernel.org/kvmarm/x%40y/T/#u",
    "https://lore.kernel.org/r/%3C%3E@x",
    "v3",
    "[PATCH v2 3/7]",
    "Re:",
    "@",
    "@@",
    "<>",
    "<@>",
]
HEADS = [
    "thread",
    "series",
    "who reviewed",
    "reviews",
    "digest",
    "status",
    "help",
    "",
    "who",
    "THREAD",
    "nonsense",
]
BAD_MARKUP = re.compile(r"<(?!https://lore\.kernel\.org/kvmarm/)")
MENTIONS = ("<!channel>", "<!here>", "<!everyone>", "<@", "<#", "<!subteam")


def hostile_queries() -> list[str]:
    rng = random.Random(SEED)
    queries = [
        "thread " + "x" * 10_240,
        "who reviewed " + " ".join(rng.choice(PIECES) for _ in range(2000))[:10_240],
        "reviews " + "<!channel> " * 1000,
        "thread <!channel> <!here> <@U024BE7LH>",
        "series \x00\x01\x02",
        "thread " + "(" * 500,
        'thread "' * 300,
    ]
    while len(queries) < COUNT:
        words = [rng.choice(PIECES) for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.3:
            words.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4))))
        queries.append(f"{rng.choice(HEADS)} {' '.join(words)}".strip())
    return queries


@pytest.fixture(scope="module")
def deps(archive_path: Path):
    from tests.fake_slack import FakeSlack

    path = archive_path
    with FakeSlack() as fake:
        config = app_config(fake, path)
        yield Deps(
            config=config,
            db_factory=per_thread(lambda: open_db(path, readonly=True)),
            sources=Sources(lore_url=config.lore_url, db_path=str(path)),
        )


def _texts(value):
    """Every string in a message payload."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, str):
        yield value


def check_reply(reply: dict) -> None:
    assert reply["response_type"] == "ephemeral"
    blocks = reply["blocks"]
    assert 1 <= len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        if block["type"] == "actions":
            assert all(len(e["value"]) <= 2000 for e in block["elements"])
    for text in _texts(reply):
        assert not BAD_MARKUP.search(text), text[:300]
        for mention in MENTIONS:
            assert mention not in text


def test_queries_are_generated_reproducibly():
    queries = hostile_queries()
    assert len(queries) == COUNT
    assert queries == hostile_queries()
    assert max(len(q) for q in queries) >= 10_240


def test_hostile_queries_never_raise_and_are_escaped(deps):
    started = time.perf_counter()
    for query in hostile_queries():
        reply = reply_for_text(deps, query)
        check_reply(reply)
    assert time.perf_counter() - started < 120


def test_hostile_queries_render_in_the_terminal(deps):
    from bot.commands.answers import answer
    from bot.commands.grammar import UsageError, parse_command

    db = deps.db_factory()
    for query in hostile_queries()[:100]:
        try:
            command = parse_command(query)
        except UsageError:
            continue
        if command.name != "digest":
            assert render_text(answer(db, command, deps.sources))


def test_echoed_mentions_are_shown_literally(deps):
    # Slack sends what the user typed as entities; a real mention (<!channel>) it formats.
    reply = reply_for_text(deps, "thread &lt;!channel&gt; <!here> zzqqxx")
    said = json.dumps(reply)
    assert "zzqqxx" in said
    assert "&lt;!channel&gt;" in said
    assert "<!channel>" not in said


@pytest.mark.parametrize("query", hostile_queries()[:4], ids=["10KB", "mixed", "channels", "ats"])
def test_hostile_queries_through_the_app(fake_slack, archive_path, query):
    app = build_app(app_config(fake_slack, archive_path), token_verification_enabled=False)
    url = f"{fake_slack.base_url}/commands/T1/1/hook"
    reply = dispatch(app, command_body(query, url))
    assert reply.status == 200
    if reply.body:  # usage error or help, answered in the ack
        check_reply(json.loads(reply.body))
    else:
        [call] = wait_for(fake_slack, "response")
        check_reply(call.params)
