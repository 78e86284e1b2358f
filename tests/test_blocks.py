"""Block Kit rendering and escaping of answers (pure: no database, no Slack)."""

from __future__ import annotations

import json

import pytest

from bot.blockkit import MAX_BLOCKS
from bot.commands.grammar import Command, UsageError, parse_command
from bot.commands.layout import Layout, Section, Span
from bot.commands.results import Help, NoMatch
from bot.mrkdwn import escape_mrkdwn
from bot.slack.blocks import (
    SHARE_ACTION,
    answer_message,
    error_message,
    layout_message,
)
from bot.slack.escape import link, unescape_incoming


def test_escape_is_slacks_rule():
    assert (
        escape_mrkdwn("a <!channel> & <@U1> > b") == "a &lt;!channel&gt; &amp; &lt;@U1&gt; &gt; b"
    )


def test_links_escape_their_label_and_refuse_unsafe_urls():
    assert link("https://lore.kernel.org/kvmarm/a@b/", "x <y> & z") == (
        "<https://lore.kernel.org/kvmarm/a@b/|x &lt;y&gt; &amp; z>"
    )
    assert link("https://lore.kernel.org/kvmarm/a&b@c/", "t").startswith(
        "<https://lore.kernel.org/kvmarm/a&amp;b@c/|"
    )
    for url in ("https://x/<a>", "https://x/a|b", "https://x/a b"):
        with pytest.raises(ValueError):
            link(url, "t")


@pytest.mark.parametrize(
    ("incoming", "typed"),
    [
        ("who reviewed FEAT_ECV", "who reviewed FEAT_ECV"),
        ("<@U0BOT0001> thread vgic", " thread vgic"),
        ("reviews <mailto:maz@kernel.org|maz@kernel.org>", "reviews maz@kernel.org"),
        (
            "thread <https://lore.kernel.org/kvmarm/a@b/|lore.kernel.org/kvmarm/a@b/>",
            "thread https://lore.kernel.org/kvmarm/a@b/",
        ),
        ("thread &lt;a.b@c&gt; &amp; x", "thread <a.b@c> & x"),
        ("thread <!channel> <#C1|general> x", "thread   x"),
    ],
)
def test_incoming_slack_formatting_is_undone(incoming, typed):
    assert unescape_incoming(incoming) == typed


def test_usage_errors_are_ephemeral_with_usage():
    with pytest.raises(UsageError) as err:
        parse_command("frobnicate <x>")
    message = error_message(err.value)
    assert message["response_type"] == "ephemeral"
    said = json.dumps(message)
    assert "Unknown command `frobnicate`" in said and "Usage: /kvmarm" in said
    assert not [b for b in message["blocks"] if b["type"] == "actions"]


def test_help_has_no_share_button():
    message = answer_message(Help())
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    assert "```" in message["blocks"][1]["text"]["text"]


def test_no_match_echoes_the_query_escaped():
    message = answer_message(NoMatch(Command("thread", "<!here> & x"), "series", ("A <b>",)))
    said = json.dumps(message)
    assert "&lt;!here&gt; &amp; x" in said and "A &lt;b&gt;" in said
    assert "<!here>" not in said


def test_long_answers_stay_within_slack_limits():
    line = (Span("patch <title> " * 30, "https://lore.kernel.org/kvmarm/x@y/"), Span(" & more"))
    lay = Layout(
        (Span("Title", bold=True),),
        tuple(Section(f"part {i}", (line,) * 40) for i in range(80)),
        "fallback",
        share="thread x@y",
    )
    message = layout_message(lay)
    blocks = message["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert blocks[-1]["type"] == "actions"
    assert blocks[-1]["elements"][0]["action_id"] == SHARE_ACTION
    assert "left out" in blocks[-2]["elements"][0]["text"]
    for block in blocks:
        if block["type"] == "section":
            text = block["text"]["text"]
            assert len(text) <= 3000
            assert text.count("<") == text.count(">")  # no link cut in half


def test_an_overlong_single_line_is_cut_safely():
    span = Span("x" * 5000, "https://lore.kernel.org/kvmarm/x@y/")
    lay = Layout((span,), (Section(None, ((span, Span("&" * 3000)),)),), "f")
    for block in layout_message(lay)["blocks"]:
        if block["type"] == "section":
            text = block["text"]["text"]
            assert len(text) <= 3000
            assert not text.rstrip("…").endswith("&amp")
