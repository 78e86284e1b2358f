"""Block Kit rendering: limits by construction, mail text escaped, nothing can mention."""

from __future__ import annotations

import copy
import json

import pytest

from bot.blockkit import MAX_BLOCKS, MAX_HEADER, MAX_SECTION
from bot.digest import build_digest, period_for_week, render_slack
from bot.mrkdwn import escape_mrkdwn
from tests.digest_support import NOW, WEEK, fixture_db


def assert_within_limits(messages: list[dict]) -> None:
    assert messages, "no messages"
    for message in messages:
        blocks = message["blocks"]
        assert 1 <= len(blocks) <= MAX_BLOCKS
        assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 3000
        for block in blocks:
            if block["type"] == "header":
                assert block["text"]["type"] == "plain_text"
                assert len(block["text"]["text"]) <= MAX_HEADER
            if block["type"] == "section":
                if "text" in block:
                    assert len(block["text"]["text"]) <= MAX_SECTION
                for f in block.get("fields", []):
                    assert len(f["text"]) <= 2000
                assert len(block.get("fields", [])) <= 10
            if block["type"] == "context":
                assert len(block["elements"]) <= 10


def raw_mentions(messages: list[dict]) -> list[str]:
    """Every `<!…>`, `<@…>` or `<#…>` that Slack would turn into a mention or channel link."""
    text = json.dumps(messages, ensure_ascii=False)
    return [m for m in ("<!channel>", "<!here>", "<@U", "<#C", "<!everyone>") if m in text]


@pytest.fixture
def model(tmp_path):
    db = fixture_db(tmp_path)
    yield build_digest(db, period_for_week(WEEK), now=NOW)
    db.close()


def test_escape_mrkdwn():
    assert escape_mrkdwn("<!channel> & <@U123|bob> <#C1>") == (
        "&lt;!channel&gt; &amp; &lt;@U123|bob&gt; &lt;#C1&gt;"
    )
    assert escape_mrkdwn(None) == ""


def test_parent_then_replies(model):
    messages = render_slack(model)
    parent, *replies = messages
    assert parent["blocks"][0]["type"] == "header"
    assert "2023-W10" in parent["blocks"][0]["text"]["text"]
    fields = " ".join(f["text"] for f in parent["blocks"][2]["fields"])
    assert "*Mails*\n10 (1 from bots)" in fields
    assert "*Participants* (by address)\n6" in fields
    sections = [r["blocks"][0]["text"]["text"] for r in replies]
    assert sections[:3] == [
        "*📌 PATCH* · 1 entry",
        "*📌 kvmtool* · 1 entry",
        "*📌 Other* · 1 entry",
    ]
    assert replies[-1]["text"] == "Late mail (not counted)"
    assert_within_limits(messages)


def test_mail_text_is_escaped(model):
    messages = render_slack(model)
    assert raw_mentions(messages) == []
    text = json.dumps(messages, ensure_ascii=False)
    # The subject and the quoted question carry them, shown literally:
    assert "stage-2 faults on the widget &lt;!channel&gt;" in text
    assert "MMIO exit &lt;@U12345&gt;?" in text
    assert "Frank Tool &amp; Sons" in text


def test_limits_hold_for_a_huge_week(model):
    """200 entries with 80-patch series, 200-mail threads and 10 kB summaries."""
    big = copy.deepcopy(model)
    template = big["entries"][0]
    template["summary"]["this_week"] = "<!here> " + "word & more " * 1000
    template["summary"]["background"] = "x" * 5000
    template["title"] = "T" * 400 + " <@U999>"
    template["mails"] = template["mails"] * 30
    template["trailers"] = [
        {**template["trailers"][0], "n": n, "trailers": template["trailers"][0]["trailers"] * 5}
        for n in range(1, 81)
    ]
    big["entries"] = []
    for rank in range(1, 201):
        e = copy.deepcopy(template)
        e["rank"], e["key"] = rank, f"series:{rank}"
        e["participants"] = [
            {"name": f"P{i} <!channel>", "email": f"p{i}@x", "mails": 1} for i in range(50)
        ]
        big["entries"].append(e)
    big["late_mails"] = big["late_mails"] * 100
    messages = render_slack(big)
    assert_within_limits(messages)
    assert raw_mentions(messages) == []
    # every entry is in some reply
    text = json.dumps(messages)
    assert all(f"*{rank}. <" in text for rank in (1, 100, 200))


def test_empty_week_renders_a_parent_only(tmp_path):
    db = fixture_db(tmp_path)
    model = build_digest(db, period_for_week("2023-W20"), now=NOW)
    messages = render_slack(model)
    assert len(messages) == 1
    assert "No mail in this period." in json.dumps(messages)
    assert_within_limits(messages)
