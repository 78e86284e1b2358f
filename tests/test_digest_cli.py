"""`kvmarm digest` and `kvmarm post` from the command line, and their documentation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.digest_support import WEEK, fixture_db

README = Path(__file__).resolve().parents[1] / "README.md"
CLEAN_ENV = {
    "OPENAI_API_KEY": None,
    "OPENAI_BASE_URL": None,
    "KVMARM_LLM_MODEL": None,
    "SLACK_BOT_TOKEN": None,
    "SLACK_API_URL": None,
    "KVMARM_CHANNEL": None,
    "KVMARM_CHANNELS": None,
    "KVMARM_LANG": None,
    "KVMARM_CONFIG": "/dev/null",
}


@pytest.fixture
def db_path(tmp_path) -> str:
    fixture_db(tmp_path).close()
    return str(tmp_path / "digest.db")


def run(db_path: str, *args: str, **env):
    """The CLI on the fixture database; digest/post do not pull from lore here (tests never
    reach the internet; tests/test_sync.py covers the pull against a local lore)."""
    if args and args[0] in ("digest", "post") and "--help" not in args and "--offline" not in args:
        args = (*args, "--offline")
    return CliRunner().invoke(main, ["--db", db_path, *args], env={**CLEAN_ENV, **env})


def test_digest_json_is_the_model(db_path):
    result = run(db_path, "digest", "--week", WEEK, "--format", "json", "--offline")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)
    assert model["period"]["key"] == WEEK and model["totals"]["mails"] == 10
    assert "2023-W10: 10 mails, 3 entries" in result.stderr


def test_digest_markdown_en_and_zh(db_path):
    en = run(db_path, "digest", "--week", WEEK)
    assert en.exit_code == 0 and en.stdout.startswith("# kvmarm weekly digest — 2023-W10\n")
    zh = run(db_path, "digest", "--week", WEEK, "--lang", "zh")
    assert zh.exit_code == 0 and "**总邮件数**: 10" in zh.stdout
    assert "本周新讨论中进展" in zh.stdout
    from_env = run(db_path, "digest", "--week", WEEK, KVMARM_LANG="zh")
    assert from_env.stdout.startswith("# KVMARM 邮件列表周报 — 2023-W10")


def test_digest_slack_format(db_path):
    result = run(db_path, "digest", "--week", WEEK, "--format", "slack")
    messages = json.loads(result.stdout)
    assert messages[0]["blocks"][0]["type"] == "header" and len(messages) == 4


def test_digest_chart(db_path, tmp_path):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "week.png"
    result = run(db_path, "digest", "--week", WEEK, "--chart", str(chart))
    assert result.exit_code == 0
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert f"]({chart})" in result.stdout


def test_since_until_and_last(db_path):
    result = run(
        db_path, "digest", "--since", "2023-03-06", "--until", "2023-03-13", "--format", "json"
    )
    assert json.loads(result.stdout)["period"]["iso_week"] == WEEK  # exactly that week
    result = run(
        db_path,
        "digest",
        "--since",
        "2023-03-07T00:00+01:00",
        "--until",
        "2023-03-08",
        "--format",
        "json",
    )
    period = json.loads(result.stdout)["period"]
    assert period["since"] == "2023-03-06T23:00:00Z" and period["iso_week"] is None
    result = run(db_path, "digest", "--last", "7d", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["period"]["iso_week"] is None


@pytest.mark.parametrize(
    "args",
    [
        ("--week", "2022-W99"),
        ("--week", "2022-W07", "--last", "7d"),
        ("--until", "2022-02-01"),
        ("--last", "seven"),
        ("--lang", "fr"),
        ("--format", "html"),
    ],
)
def test_usage_errors_exit_2(db_path, args):
    result = run(db_path, "digest", *args)
    assert result.exit_code == 2, result.output


def test_default_is_last_week_and_says_when_empty(db_path):
    result = run(db_path, "digest", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["period"]["iso_week"]
    assert "no mail dated in this period" in result.stderr


def test_post_needs_a_token_and_an_allowed_channel(db_path, fake_slack):
    result = run(db_path, "post", "--channel", "C1", "--week", WEEK)
    assert result.exit_code == 1 and "SLACK_BOT_TOKEN" in result.output
    slack = {"SLACK_BOT_TOKEN": "xoxb-t", "SLACK_API_URL": fake_slack.api_url}
    result = run(db_path, "post", "--week", WEEK, **slack)
    assert result.exit_code == 2 and "--channel" in result.output
    result = run(db_path, "post", "--channel", "C1", "--week", WEEK, KVMARM_CHANNEL="C2", **slack)
    assert result.exit_code == 1 and "may not receive digests" in result.output
    assert fake_slack.calls == []


def test_post_once(db_path, fake_slack):
    env = {"SLACK_BOT_TOKEN": "xoxb-t", "SLACK_API_URL": fake_slack.api_url, "KVMARM_CHANNEL": "C1"}
    first = run(db_path, "post", "--week", WEEK, "--no-chart", **env)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("posted 2023-W10 to C1: parent ")
    second = run(db_path, "post", "--week", WEEK, **env)
    assert second.exit_code == 0 and "already posted" in second.stdout
    assert len(fake_slack.calls_to("chat.postMessage")) == 4
    forced = run(db_path, "post", "--week", WEEK, "--force", "--no-chart", **env)
    assert forced.exit_code == 0 and len(fake_slack.calls_to("chat.postMessage")) == 8


def test_help_has_examples():
    for command in ("digest", "post"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output
    assert "--offline" in CliRunner().invoke(main, ["digest", "--help"]).output


def test_readme_documents_the_digest():
    text = README.read_text(encoding="utf-8")
    assert "## The weekly digest" in text
    for row in ("| `kvmarm [--db PATH] digest", "| `kvmarm [--db PATH] post"):
        assert row in text
    for word in ("--format", "Grounding", "Cache", "--force", "chart", "KVMARM_REGEN_GOLDEN"):
        assert word in text
