"""`kvmarm ingest/status/series/threads` end to end through the CLI (click's runner)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.shared import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def _run(db: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _curated(*names: str) -> list[str]:
    folder = shared_data_dir() / "fixtures" / "kvmarm-curated"
    return [str(folder / n) for n in names]


def test_ingest_twice_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    files = _curated("stolen-time-v1-v7.mbox", "b4-ty-applied.mbox", "two-series-one-send.mbox")
    first = json.loads(_run(db, "ingest", "--json", *files))
    before = _run(db, "series", "--json")
    threads_before = _run(db, "threads", "--json")
    second = json.loads(_run(db, "ingest", "--json", *files))
    assert first["added"] == 212 and second["added"] == 0
    assert second["duplicates"] == second["seen"] == first["seen"]
    assert _run(db, "series", "--json") == before
    assert _run(db, "threads", "--json") == threads_before


def test_status_json_contract(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _run(db, "ingest", *_curated("duplicate-message-id.mbox"))
    status = json.loads(_run(db, "status", "--json"))
    assert {"messages", "threads", "series", "quarantined", "last_sync"} <= set(status)
    assert (status["messages"], status["threads"], status["series"]) == (16, 1, 1)
    assert status["db"] == str(db)


def test_series_json_contract(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _run(db, "ingest", *_curated("b4-ty-applied.mbox"))
    [s] = json.loads(_run(db, "series", "--json"))
    assert {"id", "title", "author", "change_id", "versions"} <= set(s)
    assert set(s["author"]) == {"name", "email"}
    [v] = s["versions"]
    assert {"version", "date", "cover", "total", "tags", "status", "applied", "patches"} <= set(v)
    assert set(v["applied"]) >= {"msgid", "by", "where"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", v["date"])
    for p in v["patches"]:
        assert {"n", "msgid", "subject", "trailers"} <= set(p)
        assert "<" not in p["msgid"]
        for t in p["trailers"]:
            assert {"type", "name", "email", "msgid"} <= set(t)


def test_window_is_half_open_on_the_utc_date(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _run(db, "ingest", *_curated("b4-ty-applied.mbox"))
    [thread] = json.loads(_run(db, "threads", "--json"))
    dates = sorted(m["date"] for m in thread["messages"])
    first, last = dates[0], dates[-1]
    inside = json.loads(_run(db, "threads", "--json", "--since", first, "--until", last))
    got = sorted(m["date"] for t in inside for m in t["messages"])
    assert got[0] == first and last not in got
    # The cover, the first mail, is dated 01:57:00 UTC: "+08:00" bounds are converted.
    assert json.loads(_run(db, "series", "--json", "--until", "2022-01-18T09:57:00+08:00")) == []
    assert (
        len(json.loads(_run(db, "series", "--json", "--until", "2022-01-18T09:57:01+08:00"))) == 1
    )


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 not mail at all")
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "k.db"), "ingest", str(junk)])
    assert result.exit_code == 1
    assert "junk.bin" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "k.db"), "series", "--since", "soon"])
    assert result.exit_code == 2 and "ISO 8601" in result.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help_with_an_example_and_a_readme_line(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output, f"kvmarm {command} --help has no example"
    assert f"kvmarm [--db PATH] {command}" in (ROOT / "README.md").read_text() or (
        f"`kvmarm {command}" in (ROOT / "README.md").read_text()
    ), f"README does not document kvmarm {command}"


def test_reindex_reparses_stored_mail_and_keeps_facts(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    _run(db, "ingest", *_curated("b4-ty-applied.mbox", "v2-in-reply-to-v1.mbox"))
    before = _run(db, "series", "--json")
    from storage.db import open_db
    from storage.state import set_state

    handle = open_db(db)
    handle.execute("UPDATE messages SET applied = NULL")  # as if parsed by older rules
    set_state(handle, "parse_version", 1)
    handle.conn.commit()
    handle.close()
    assert json.loads(_run(db, "status", "--json"))["reindex_needed"] is True
    assert "19 mails re-parsed" in _run(db, "reindex")
    assert _run(db, "series", "--json") == before
    assert json.loads(_run(db, "status", "--json"))["reindex_needed"] is False


def test_reindex_writes_while_reading_and_still_reads_each_mail_once(tmp_path: Path) -> None:
    from bot.sync.pipeline import ingest_mails, reindex
    from ingest.sources import iter_raw_mails
    from storage.db import open_db
    from storage.views import series_json

    db = open_db(tmp_path / "k.db")
    for path in _curated("stolen-time-v1-v7.mbox", "b4-ty-applied.mbox"):
        ingest_mails(db, iter_raw_mails(Path(path)))
    before = series_json(db)
    # Small chunks and batches: rows are rewritten long before the last ones are read.
    assert reindex(db, chunk=7, batch_size=20) == 196
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 196
    assert series_json(db) == before
