"""The /kvmarm grammar: every command, its aliases, and the usage errors."""

from __future__ import annotations

import pytest

from bot.commands.grammar import MAX_QUERY_CHARS, USAGE, Command, UsageError, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thread FEAT_LS64", Command("thread", "FEAT_LS64")),
        ("  THREAD   stolen   time ", Command("thread", "stolen time")),
        ("series MTE support", Command("series", "MTE support")),
        ("who reviewed FEAT_ECV", Command("who reviewed", "FEAT_ECV")),
        ("Who Reviewed the MTE series", Command("who reviewed", "the MTE series")),
        ("who acked vgic", Command("who reviewed", "vgic")),
        ("who-reviewed vgic", Command("who reviewed", "vgic")),
        ("reviews Andrew Jones", Command("reviews", "Andrew Jones")),
        ("reviews <maz@kernel.org>", Command("reviews", "<maz@kernel.org>")),
        ("digest", Command("digest", "last")),
        ("digest this", Command("digest", "this")),
        ("digest LAST", Command("digest", "last")),
        ("digest 2022-W07", Command("digest", "2022-W07")),
        ("digest 2022w07", Command("digest", "2022-W07")),
        ("status", Command("status")),
        ("help", Command("help")),
        ("", Command("help")),
        ("   ", Command("help")),
        (
            "thread https://lore.kernel.org/kvmarm/20210916181510.963449-1-oupton@google.com/",
            Command(
                "thread",
                "https://lore.kernel.org/kvmarm/20210916181510.963449-1-oupton@google.com/",
            ),
        ),
    ],
)
def test_commands_parse(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("frobnicate the thing", "Unknown command `frobnicate`"),
        ("thread", "`thread` needs words"),
        ("series   ", "`series` needs words"),
        ("who", "Did you mean `who reviewed <words>`?"),
        ("who is maz", "Did you mean `who reviewed <words>`?"),
        ("who reviewed", "`who reviewed` needs words"),
        ("reviews", "`reviews` needs words"),
        ("digest yesterday", "`yesterday` is not a week"),
        ("digest 2022-W54", "`2022-W54` is not a week"),
        ("digest this last", "`digest` takes one of"),
    ],
)
def test_usage_errors_say_what_was_wrong(text, message):
    with pytest.raises(UsageError) as err:
        parse_command(text)
    assert message in str(err.value)
    assert err.value.usage == USAGE


def test_usage_lists_every_command_with_an_example():
    for name in ("thread", "series", "who reviewed", "reviews", "digest", "status", "help"):
        assert f"  {name}" in USAGE
    for example in (
        "/kvmarm thread ",
        "/kvmarm series ",
        "/kvmarm who reviewed ",
        "/kvmarm reviews ",
        "/kvmarm digest ",
    ):
        assert example in USAGE


def test_command_text_round_trips():
    for text in ("thread FEAT_ECV", "who reviewed MTE support", "digest 2022-W07", "status"):
        assert parse_command(parse_command(text).text) == parse_command(text)


def test_an_unknown_word_is_cut_in_the_message():
    with pytest.raises(UsageError) as err:
        parse_command("x" * 5000)
    assert len(str(err.value)) < 100


def test_long_input_is_cut_not_refused():
    command = parse_command("thread " + "word " * 5000)
    assert command.name == "thread"
    assert len(command.query) < MAX_QUERY_CHARS


def test_command_is_frozen():
    command = parse_command("thread x")
    with pytest.raises(AttributeError):
        command.query = "y"  # type: ignore[misc]
