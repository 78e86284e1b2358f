"""Facts → events: once each, a baseline on first recording, real months of the archive;
the files patches touch; subscription filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.live.filters import DEFAULT_KINDS, FilterError, SeriesView, matches, parse_filter
from bot.live.record import record_live_facts
from ingest.diffpaths import paths_of_diff
from storage import live as store
from storage.db import open_db
from tests.live_support import ingest, january_db, month

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("live-events")


@pytest.fixture(scope="module")
def janfeb(tmp_path_factory, workdir):
    path = january_db(tmp_path_factory.mktemp("janfeb"), workdir)
    before = open_db(path)
    baseline = store.count_events(before, baseline=True)
    assert store.count_events(before) == {}  # January only: all baseline
    before.close()
    ingest(path, month("2022-02"))
    return path, baseline


def test_first_recording_is_a_baseline_never_delivered(janfeb):
    _path, baseline = janfeb
    assert sum(baseline.values()) > 50, baseline
    assert baseline.get("new_series", 0) > 10


def test_next_month_makes_events_of_every_derived_kind(janfeb):
    path, _ = janfeb
    db = open_db(path)
    counts = store.count_events(db)
    # measured on 2022-02 after 2022-01 (see README): these are real February facts
    assert counts["new_series"] >= 15 and counts["new_version"] >= 10, counts
    assert counts["review"] >= 50 and counts["applied"] >= 10, counts
    assert counts["pulled"] >= 3 and counts["report"] >= 1, counts
    assert counts["changes_requested"] >= 1, counts
    events = store.pending_events(db)
    assert len(events) == sum(counts.values())
    assert all(e.at and e.at >= "2022-01-29" for e in events)
    applied = [e for e in events if e.kind == "applied" and e.detail["commit"] == (
        "e2ffceaae50883c5064641167078e5720fd8b74a")]  # fmt: skip
    assert len(applied) == 1 and applied[0].actor_email == "maz@kernel.org"
    assert applied[0].detail["where"] == "next" and applied[0].version == 5
    respin = [e for e in events if e.kind == "changes_requested"]
    assert any(e.detail["where"] == "I will make this change in v6" for e in respin)
    reviews = [e for e in events if e.kind == "review"]
    assert all(e.detail["trailer"] in ("Reviewed-by", "Acked-by", "Tested-by") for e in reviews)
    assert all(e.detail["patches"] for e in reviews)
    db.close()


def test_recording_again_makes_nothing_new(janfeb):
    path, _ = janfeb
    db = open_db(path)
    before = store.last_event_id(db)
    assert before > 0
    assert record_live_facts(db, NOW) == 0
    ingest(path, month("2022-02")[:50])  # re-ingesting stored mail changes nothing
    assert store.last_event_id(db) == before
    db.close()


def test_paths_are_stored_for_every_patch(janfeb):
    """The paths live filters match are the parser's (``messages.paths``), for every patch,
    the same as read from the stored diff again."""
    import json
    import zlib

    path, _ = janfeb
    db = open_db(path)
    [[paths]] = db.execute(
        "SELECT paths FROM messages WHERE msgid = ?",
        ["20220208123726.3604198-1-maz@kernel.org"],
    ).fetchall()
    assert paths == '["arch/arm64/kvm/vgic/vgic-mmio.c"]'
    rows = db.execute(
        """SELECT DISTINCT p.msgid, m.paths, c.diff FROM patches p
           JOIN messages m ON m.msgid = p.msgid JOIN message_content c ON c.msgid = p.msgid"""
    ).fetchall()
    assert len(rows) > 400
    for _msgid, stored, diff in rows:
        again = paths_of_diff(zlib.decompress(diff).decode("utf-8", "surrogatepass"))
        assert json.loads(stored) == list(again) and again
    [[series]] = db.execute(
        "SELECT v.series_id FROM versions v JOIN patches p ON p.version_key = v.key"
        " WHERE p.msgid = '20220208123726.3604198-1-maz@kernel.org'"
    ).fetchall()
    assert store.series_paths(db, series) == {"arch/arm64/kvm/vgic/vgic-mmio.c"}
    db.close()


def test_a_patch_parsed_before_paths_were_kept_uses_its_indexed_paths(tmp_path, workdir):
    """Until `kvmarm reindex`, a patch parsed by an older version has no stored paths; the
    ones live delivery indexed from its diff back then are used."""
    db = open_db(january_db(tmp_path, workdir))
    [(msgid, series)] = db.execute(
        "SELECT p.msgid, v.series_id FROM patches p JOIN versions v ON v.key = p.version_key"
        " JOIN messages m ON m.msgid = p.msgid"
        " WHERE (SELECT count(*) FROM patches q WHERE q.version_key IN"
        "        (SELECT key FROM versions WHERE series_id = v.series_id)) = 1"
        " AND m.paths != '[]' ORDER BY p.msgid LIMIT 1"
    ).fetchall()
    with db.atomic():
        db.execute("UPDATE messages SET paths = '[]' WHERE msgid = ?", [msgid])
    assert store.series_paths(db, series) == set()
    with db.atomic():
        db.execute(
            "INSERT INTO message_paths(msgid, paths) VALUES (?, ?)", [msgid, '["old/indexed.c"]']
        )
    assert store.series_paths(db, series) == {"old/indexed.c"}
    db.close()


def test_paths_of_diff():
    diff = (
        "diff --git a/arch/arm64/kvm/old.c b/arch/arm64/kvm/new.c\n"
        "similarity index 90%\n"
        "diff --git a/Documentation/x.rst b/Documentation/x.rst\n"
        "--- a/Documentation/x.rst\n+++ b/Documentation/x.rst\n"
    )
    assert paths_of_diff(diff) == ("arch/arm64/kvm/old.c", "arch/arm64/kvm/new.c",
                                   "Documentation/x.rst")  # fmt: skip
    plain = "--- a/lib/a.c\n+++ b/lib/a.c\n@@ -1 +1 @@\n--- /dev/null\n+++ b/lib/new.c\n"
    assert paths_of_diff(plain) == ("lib/a.c", "lib/new.c")
    assert paths_of_diff("no diff here") == ()


# ---- filters -------------------------------------------------------------------------------

VGIC = SeriesView(
    titles=("KVM: arm64: vgic: Read HW interrupt pending state from the HW",),
    people=(("Marc Zyngier", "maz@kernel.org"),),
    paths=frozenset({"arch/arm64/kvm/vgic/vgic-mmio.c", "include/kvm/arm_vgic.h"}),
    msgids=frozenset({"20220208123726.3604198-1-maz@kernel.org"}),
)


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("path:arch/arm64/kvm/vgic/*", "applied", True),
        ("path:arch/arm64/kvm/vgic/*", "review", False),  # review is not in the default
        ("path:arch/arm64/kvm/vgic/* events:review", "review", True),
        ("path:arch/arm64/kvm/vgic", "new_series", True),  # a directory: anything below
        ("path:arch/arm64/kvm/mmu.c", "new_series", False),
        ("path:include/kvm/*.h", "new_series", True),
        ("vgic pending", "new_series", True),
        ("vgic ITS", "new_series", False),
        ("author:maz@kernel.org", "new_series", True),
        ("author:<MAZ@kernel.org>", "new_series", True),
        ("author:Zyngier", "new_series", True),
        ("author:oupton@google.com", "new_series", False),
        ("all -author:maz@kernel.org", "new_series", False),
        ("all -vgic", "new_series", False),
        ("all", "report", True),
        (
            "series:https://lore.kernel.org/kvmarm/20220208123726.3604198-1-maz@kernel.org/",
            "pulled",
            True,
        ),
        ("series:<other@host>", "pulled", False),
    ],
)
def test_filters_match(text, kind, expected):
    assert matches(parse_filter(text), VGIC, kind) is expected


def test_filter_text_is_normalised_and_round_trips():
    f = parse_filter("-author:syzbot events:applied,new  “Marc Zyngier” path:a/b/*")
    assert f.text == "'Marc Zyngier' path:a/b/* events:new_series,applied -author:syzbot"
    assert parse_filter(f.text) == f
    assert parse_filter("all").kinds == DEFAULT_KINDS and "review" not in DEFAULT_KINDS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "say what to follow"),
        ("-author:syzbot", "say what to follow"),
        ("all events:bogus", "unknown event kind `bogus`"),
        ("author:", "`author:` needs a value"),
        ("series:hello", "`series:` wants a lore link or a Message-ID"),
        ('vgic "unclosed', "cannot read the filter"),
        ("x" * 400, "at most 300 characters"),
    ],
)
def test_filter_errors_say_what_is_wrong(text, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(text)


def test_subscribe_commands_parse_to_normalised_filters():
    from bot.commands.grammar import Command, UsageError, parse_command

    assert parse_command("subscribe  vgic   -author:syzbot") == Command(
        "subscribe", "vgic -author:syzbot"
    )
    assert parse_command("unsubscribe all") == Command("unsubscribe", "all")
    assert parse_command("subscriptions") == Command("subscriptions")
    with pytest.raises(UsageError, match="`subscribe` needs a filter"):
        parse_command("subscribe")


def test_ask_refuses_slack_only_commands(tmp_path):
    from click.testing import CliRunner

    from bot.cli import main

    result = CliRunner().invoke(
        main, ["--db", str(tmp_path / "k.db"), "ask", "subscribe", "all"],
        env={"KVMARM_CONFIG": "/dev/null"},
    )  # fmt: skip
    assert result.exit_code == 2 and "works in a Slack channel" in result.output


def test_recipients_read_to_and_cc():
    from ingest.recipients import recipients

    raw = (
        b"From: A <a@x.org>\nTo: kvmarm@lists.linux.dev,\n Marc Zyngier <MAZ@kernel.org>\n"
        b"Cc: =?utf-8?q?J=C3=B6rg?= <joerg@x.org>, will@kernel.org\n"
        b"Subject: [PATCH] x\n\nTo: not@header.org\n"
    )
    assert recipients(raw) == {"kvmarm@lists.linux.dev", "maz@kernel.org", "joerg@x.org",
                               "will@kernel.org"}  # fmt: skip
    assert recipients(b"Subject: none\n\nbody") == frozenset()
