"""Every `kvmarm` edge ends in one line on stderr and exit 2 (usage) or 1 (failure), never a
traceback; read-only commands work on a read-only database.  Real processes: a traceback
printed by logging's last-resort handler would show here, not in click's runner."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared import shared_data_dir

KVMARM = Path(sys.executable).parent / "kvmarm"
MONTH = "kvmarm-2022-02.mbox.gz"


def _nested_mime(depth: int) -> str:
    lines = [
        "From: Nest <nest@example.org>",
        "Subject: [PATCH] nested",
        "Date: Mon, 10 Jan 2022 10:00:00 +0000",
        "Message-ID: <nested@example.org>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b0"',
        "",
    ]
    for i in range(1, depth):
        lines += [f"--b{i - 1}", f'Content-Type: multipart/mixed; boundary="b{i}"', ""]
    lines += [f"--b{depth - 1}", "Content-Type: text/plain", "", "deep", f"--b{depth - 1}--"]
    lines += [f"--b{i}--" for i in range(depth - 2, -1, -1)]
    return "\n".join(lines) + "\n"


def run(tmp: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    (tmp / "none.toml").write_text("")
    env = dict(
        os.environ,
        KVMARM_CONFIG=str(tmp / "none.toml"),
        KVMARM_LORE_URL="http://127.0.0.1:9/kvmarm",  # nothing listens: never the internet
        SLACK_BOT_TOKEN="xoxb-0-test",
        SLACK_API_URL="http://127.0.0.1:9/api/",
        KVMARM_CHANNEL="C1",
    )
    env.pop("KVMARM_DB", None)
    return subprocess.run(
        [*prefix, str(KVMARM), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def month_db(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("month")
    db = tmp / "k.db"
    done = run(tmp, "--db", str(db), "ingest", str(shared_data_dir() / "kvmarm-archive" / MONTH))
    assert done.returncode == 0, done.stderr
    return db


EDGES = {
    "digest week 9999-W52": (2, ["digest", "--offline", "--week", "9999-W52"], "outside the dates"),
    "digest week 0001-W01": (2, ["digest", "--offline", "--week", "0001-W01"], "outside the dates"),
    "digest since 0001-01-01": (2, ["digest", "--offline", "--since", "0001-01-01"], "outside"),
    "digest online 9999-W52": (2, ["digest", "--week", "9999-W52"], "outside the dates"),
    "post week 9999-W52": (2, ["post", "--week", "9999-W52", "--channel", "C1"], "outside"),
    "ask digest 9999-W52": (2, ["ask", "digest", "9999-W52"], "outside the dates"),
    "series since huge age": (2, ["series", "--since", "99999999999d"], "before the year 1"),
    "series since nonsense": (2, ["series", "--since", "last tuesday"], "not an ISO 8601"),
    "unknown option": (2, ["status", "--bogus"], "No such option"),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_gives_one_line_and_an_exit_code(month_db, tmp_path, name) -> None:
    code, args, words = EDGES[name]
    done = run(tmp_path, "--db", str(month_db), *args)
    _one_line(done, code, words)


def _one_line(done: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and words in lines[0], lines[0]


def test_db_in_a_directory_that_cannot_be_created(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = run(tmp_path, "--db", str(blocker / "sub" / "k.db"), "status")
    _one_line(done, 1, "cannot create the directory")


@pytest.mark.parametrize("command", ["status", "series", "ingest"])
def test_db_that_is_not_sqlite(tmp_path, command) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    args = {"status": ["status"], "series": ["series", "--json"], "ingest": ["ingest", str(path)]}
    done = run(tmp_path, "--db", str(path), *args[command])
    _one_line(done, 1, "file is not a database")
    assert path.read_bytes() == before


def test_a_thousand_level_nested_mime_mail_is_quarantined_with_one_line(tmp_path) -> None:
    mail = tmp_path / "nested.eml"
    mail.write_text(_nested_mime(1000))
    log = tmp_path / "debug.log"
    (tmp_path / "none.toml").write_text("")
    env = dict(os.environ, KVMARM_CONFIG=str(tmp_path / "none.toml"), KVMARM_DEBUG_LOG=str(log))
    done = subprocess.run(
        [str(KVMARM), "--db", str(tmp_path / "k.db"), "ingest", "--json", str(mail)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["quarantined"] == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("warning: quarantined") and "RecursionError" in line
    assert "Traceback" in log.read_text()  # the details went to the debug log
    status = run(tmp_path, "--db", str(tmp_path / "k.db"), "status", "--json")
    assert json.loads(status.stdout)["quarantined"] == 1


def _without_root_powers() -> tuple[str, ...]:
    """As root, permissions do not bind: drop the capabilities that bypass them."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only file is writable anyway")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--")


READERS = {
    "status": (["status", "--json"], 0),
    "series": (["series", "--json"], 0),
    "threads": (["threads", "--json"], 0),
    "ask": (["ask", "series", "hypercall services selection"], 0),
    "digest offline": (["digest", "--offline", "--week", "2022-W06"], 0),
}


@pytest.fixture
def read_only_db(month_db: Path, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "k.db"
    shutil.copy(month_db, db)
    db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    folder.chmod(0o555)
    yield db
    folder.chmod(0o755)


@pytest.mark.parametrize("name", sorted(READERS))
def test_read_only_commands_work_on_a_read_only_database(read_only_db, tmp_path, name) -> None:
    args, code = READERS[name]
    prefix = _without_root_powers()
    before = read_only_db.read_bytes()
    done = run(tmp_path, "--db", str(read_only_db), *args, prefix=prefix)
    assert done.returncode == code, done.stderr
    assert done.stdout.strip() and "Traceback" not in done.stderr
    assert read_only_db.read_bytes() == before
    assert sorted(p.name for p in read_only_db.parent.iterdir()) == ["k.db"]


def test_a_writer_on_a_read_only_database_fails_in_one_line(read_only_db, tmp_path) -> None:
    prefix = _without_root_powers()
    done = run(
        tmp_path, "--db", str(read_only_db), "ingest", str(tmp_path / "none.toml"), prefix=prefix
    )
    _one_line(done, 1, "lock file")


# --- the same edges as slash commands: answered, not dropped after the ack ------------------


@pytest.mark.parametrize("week", ["9999-W52", "0001-W01"])
def test_slash_digest_of_a_week_out_of_range_answers_the_error(fake_slack, month_db, week):
    from datetime import UTC, datetime

    from bot.digest.extractive import ExtractiveSummariser
    from bot.slack.app import create_app, per_thread
    from bot.slack.client import make_web_client
    from bot.slack.digest import DigestGlue
    from storage.db import open_db
    from tests.slack_requests import app_config, command_body, dispatch, wait_for

    config = app_config(fake_slack, month_db)
    client = make_web_client(config)
    factory = per_thread(lambda: open_db(month_db))
    glue = DigestGlue(
        config, client, ExtractiveSummariser(), factory, lambda: datetime(2022, 2, 23, tzinfo=UTC)
    )
    app = create_app(
        config, client=client, db_factory=factory, digest=glue, token_verification_enabled=False
    )
    url = f"{fake_slack.base_url}/commands/T1/1/hook"
    reply = dispatch(app, command_body(f"digest {week}", url))
    assert reply.status == 200
    [answer] = wait_for(fake_slack, "response", timeout=60)
    text = json.dumps(answer.params, ensure_ascii=False)
    assert "outside the dates kvmarm handles" in text
    assert answer.params["response_type"] == "ephemeral"
