"""manifest.yml: valid for Slack's own schema, and every command it declares has a handler,
a usage hint naming every subcommand, and a README line."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.commands.grammar import COMMANDS
from tests.shared import shared_data_dir
from tests.slack_requests import app_config, build_app, command_body, dispatch

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "files:write",
    "app_mentions:read",
    "channels:join",  # conversations.join before posting: the chart needs membership
    "channels:history",  # look up an interrupted post by its metadata (public channel)
    "groups:history",  # the same in a private channel
    "files:read",  # files.info: was an interrupted chart upload shared after all?
    "channels:read",  # subscriptions: is the bot in this channel (conversations.info)
    "groups:read",
    "links:read",  # link_shared for lore links
    "links:write",  # chat.unfurl
    "users:read",  # /kvmarm iam from the Slack profile address
    "users:read.email",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def _commands(manifest: dict) -> list[dict]:
    return manifest["features"]["slash_commands"]


def test_manifest_is_valid_for_slacks_schema(manifest):
    schema = json.loads((shared_data_dir() / "slack" / "manifest.schema.1.0.0.json").read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_schema_check_is_real(manifest):
    schema = json.loads((shared_data_dir() / "slack" / "manifest.schema.1.0.0.json").read_text())
    broken = json.loads(json.dumps(manifest))
    broken["features"]["slash_commands"][0]["command"] = "/" + "k" * 40
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_manifest_declares_what_the_app_needs(manifest):
    assert manifest["features"]["bot_user"]["display_name"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= REQUIRED_SCOPES
    assert "app_mention" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # the buttons


def test_manifest_requests_no_scope_the_app_does_not_use(manifest):
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == REQUIRED_SCOPES


def test_readme_says_why_each_scope_is_requested(manifest):
    readme = (ROOT / "README.md").read_text()
    for scope in manifest["oauth_config"]["scopes"]["bot"]:
        assert f"`{scope}`" in readme, scope
    assert "/invite @kvmarm" in readme


def test_commands_are_short_and_hint_every_subcommand(manifest):
    for command in _commands(manifest):
        assert command["command"].startswith("/") and len(command["command"]) <= 32
        assert command["description"]
        for name in COMMANDS:
            assert name in command["usage_hint"], name


def test_every_manifest_command_has_a_handler(manifest, fake_slack, tmp_path):
    app = build_app(app_config(fake_slack, tmp_path / "k.db"), token_verification_enabled=False)
    url = f"{fake_slack.base_url}/r/1"
    for command in _commands(manifest):
        reply = dispatch(app, command_body("help", url, command=command["command"]))
        assert reply.status == 200, command["command"]
        assert "Usage: /kvmarm" in reply.body
    # a command the app does not handle is refused: the check above can fail
    assert dispatch(app, command_body("help", url, command="/other")).status == 404


def test_every_command_and_subcommand_has_a_readme_line(manifest):
    readme = (ROOT / "README.md").read_text().splitlines()
    for command in _commands(manifest):
        for name in COMMANDS:
            assert any(f"{command['command']} {name}" in line for line in readme), name
    assert any("kvmarm ask" in line for line in readme)
    assert any("kvmarm serve" in line for line in readme)
