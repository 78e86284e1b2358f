"""Block Kit rendering: limits by construction, mail text escaped, nothing can mention."""

from __future__ import annotations

import copy
import json

import pytest

from bot.blockkit import MAX_BLOCKS, MAX_HEADER, MAX_SECTION
from bot.digest import build_digest, period_for_week, render_slack
from bot.digest.render_slack import (
    DETAILS_ACTION,
    PARENT_BLOCKS,
    PARENT_CHARS,
    REPLY_BLOCKS,
    REPLY_CHARS,
    message_chars,
    render_details,
)
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


def test_parent_then_one_reply_per_bucket(model):
    messages = render_slack(model)
    parent, *replies = messages
    assert parent["blocks"][0]["type"] == "header"
    assert "2023-W10" in parent["blocks"][0]["text"]["text"]
    assert parent["text"] == "kvmarm 2023-W10 — 1 applied, 1 new series, 1 discussion"
    text = json.dumps(parent["blocks"], ensure_ascii=False)
    assert "*Mails* 10 (1 from bots)" in text and "*Participants* 6" in text
    assert "*✅ Applied (1)*" in text and "*🆕 New series (1)*" in text
    assert "KVM: arm64: Frobnicate the widget&gt;" not in text  # titles are link labels
    heads = [r["blocks"][0]["text"]["text"] for r in replies]
    assert heads == ["*✅ Applied* · 1", "*🆕 New series* · 1", "*💬 Discussion* · 1"]
    # numbering restarts at 1 in each message
    firsts = [r["blocks"][1]["text"]["text"] for r in replies]
    assert len(firsts) == 3 and all(f.startswith("*1. <") for f in firsts)
    assert_within_limits(messages)
    assert len(parent["blocks"]) <= PARENT_BLOCKS and message_chars(parent) <= PARENT_CHARS


def test_a_card_shows_reviews_once_links_and_a_details_button(model):
    [applied] = [m for m in render_slack(model)[1:] if "Applied" in m["blocks"][0]["text"]["text"]]
    card = applied["blocks"][1]
    text = card["text"]["text"]
    assert len(text.splitlines()) <= 6
    assert text.count("Reviewed-by:") == 1
    assert "`b4 shazam 20230307080000.5678-1-alice@example.org`" in text
    assert card["accessory"]["action_id"] == DETAILS_ACTION
    value = json.loads(card["accessory"]["value"])
    assert value == {"p": "2023-W10", "e": model["buckets"]["applied"][0], "l": "en"}
    # extractive summaries carry no source line; no mail list in Slack
    assert "source" not in text and "extractive" not in text
    assert not any(b["type"] == "context" for b in applied["blocks"])


def test_an_llm_summary_says_so_and_how_many_mails_it_cites(model):
    llm = copy.deepcopy(model)
    entry = next(e for e in llm["entries"] if e["bucket"] == "applied")
    entry["summary"] = {**entry["summary"], "source": "llm", "model": "m", "cited": ["a", "b"]}
    [applied] = [m for m in render_slack(llm)[1:] if "Applied" in m["blocks"][0]["text"]["text"]]
    contexts = [b for b in applied["blocks"] if b["type"] == "context"]
    assert [c["elements"][0]["text"] for c in contexts] == ["AI summary · cites 2 mails"]


def test_mail_text_is_escaped(model):
    messages = render_slack(model)
    assert raw_mentions(messages) == []
    text = json.dumps(messages, ensure_ascii=False)
    # The subject and the quoted question carry them, shown literally:
    assert "stage-2 faults on the widget &lt;!channel&gt;" in text
    assert "MMIO exit &lt;@U12345&gt;?" in text
    assert "Frank Tool &amp; Sons" in text


def test_limits_hold_for_a_huge_week(model):
    """200 entries in one bucket with 80-patch series, 200-mail threads and 10 kB summaries."""
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
    template["review"]["by"] = [
        {"type": "Reviewed-by", "name": f"R{i} <!channel>", "email": f"r{i}@x", "patches": [i]}
        for i in range(80)
    ]
    big["entries"] = []
    for rank in range(1, 201):
        e = copy.deepcopy(template)
        e["rank"], e["key"], e["number"] = rank, f"series:{rank}", rank
        e["participants"] = [
            {"name": f"P{i} <!channel>", "email": f"p{i}@x", "mails": 1} for i in range(50)
        ]
        big["entries"].append(e)
    big["buckets"] = {
        **{b: [] for b in big["buckets"]},
        "applied": [e["key"] for e in big["entries"]],
    }
    messages = render_slack(big)
    assert_within_limits(messages)
    assert raw_mentions(messages) == []
    parent, reply = messages
    assert len(parent["blocks"]) <= PARENT_BLOCKS and message_chars(parent) <= PARENT_CHARS
    assert len(reply["blocks"]) <= REPLY_BLOCKS and message_chars(reply) <= REPLY_CHARS
    # the first entries are cards, the rest one line each or counted
    text = json.dumps(reply)
    assert "*1. <" in text
    assert "more in `kvmarm digest --week 2023-W10`" in text
    details = render_details(big["entries"][0], big)
    assert len(details["blocks"]) <= 50 and raw_mentions([details]) == []
    assert_within_limits([details])


def test_empty_week_renders_a_parent_only(tmp_path):
    db = fixture_db(tmp_path)
    model = build_digest(db, period_for_week("2023-W20"), now=NOW)
    messages = render_slack(model)
    assert len(messages) == 1
    assert "No mail in this period." in json.dumps(messages)
    assert_within_limits(messages)
