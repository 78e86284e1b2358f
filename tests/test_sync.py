"""bot.sync against a real public-inbox server (and a flaky fake): `kvmarm sync`, `--git`.

Months: kvmarm-2020-08 ("August") and kvmarm-2020-09 ("September") of the shared archive.
Expected sets come from reading the mboxes with Python's mailbox module, not our code.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import b4
import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import load_config
from bot.sync.git import SyncError, sync_git
from bot.sync.lore import sync
from ingest.lore.client import LoreClient, LoreError, LoreHTTPError, LoreUnreachable
from ingest.sources import git_env
from storage.db import Database, open_db
from storage.state import get_state, set_state
from storage.sync import LoreMark, get_lore_mark, set_lore_mark
from storage.views import series_json, threads_json
from tests import lore_server
from tests.fake_lore import FakeLore, Reply, mail, mbox_gz

# session fixtures: a real public-inbox-httpd and the archive months read independently
lore_august = lore_server.lore_august
lore_two_months = lore_server.lore_two_months
august_mails = lore_server.august_mails
september_mails = lore_server.september_mails

AUG_1 = datetime(2020, 8, 1, tzinfo=UTC)
SEP_1 = datetime(2020, 9, 1, tzinfo=UTC)
OCT_2 = datetime(2020, 10, 2, tzinfo=UTC)
_DATA_TABLES = ("messages", "quarantine", "threads", "series", "versions", "patches", "trailers")


def config(tmp_path: Path, url: str):
    return load_config({"KVMARM_LORE_URL": url}, db=str(tmp_path / "kvmarm.db"))


def client(url: str) -> LoreClient:
    return LoreClient(url, sleep=lambda _s: None)


def stored(db) -> set[str]:
    return {row[0] for row in db.execute("SELECT msgid FROM messages")}


def stored_mark(db: Database, url: str) -> LoreMark:
    """The sync mark kept for ``url``; fails the test if there is none."""
    mark = get_lore_mark(db, url)
    assert mark is not None, url
    return mark


def fingerprint(db) -> str:
    """A hash of every row of the data tables (not `state`): equal means nothing was written."""
    digest = hashlib.sha256()
    for table in _DATA_TABLES:
        for row in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
            digest.update(repr(row).encode())
    return digest.hexdigest()


# --- incremental sync against real public-inbox ----------------------------------------------


@pytest.mark.lore
def test_first_sync_gets_the_window_and_a_second_sync_writes_nothing(
    tmp_path, db, lore_august, august_mails
):
    cfg = config(tmp_path, lore_august.url)
    report = sync(db, cfg, since=AUG_1, client=client(lore_august.url), now=SEP_1)

    expected = {m.msgid for m in august_mails if AUG_1 <= m.received <= SEP_1}
    assert len(expected) == len(august_mails) == 336
    assert stored(db) == expected  # all of the window, nothing else (no older mail on server)
    assert report.ingest.added == len(expected)
    newest = max(m.received for m in august_mails)
    assert report.high_water == newest == stored_mark(db, lore_august.url).high_water
    assert report.covered_from == AUG_1
    last = get_state(db, "last_sync")
    assert last["ok"] and last["messages"] == len(expected) and last["errors"] == []
    assert last["high_water"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")

    before = fingerprint(db)
    again = sync(db, cfg, client=client(lore_august.url), now=SEP_1)
    assert again.since == newest - timedelta(days=2)  # the overlap
    assert again.window > 0 and again.ingest.added == 0
    assert again.requests <= 2
    assert fingerprint(db) == before
    assert again.high_water == newest


@pytest.mark.lore
def test_a_server_that_gained_a_month_gives_exactly_the_new_mail(
    tmp_path, db, lore_august, lore_two_months, august_mails, september_mails
):
    cfg = config(tmp_path, lore_august.url)
    sync(db, cfg, since=AUG_1, client=client(lore_august.url), now=SEP_1)
    august = stored(db)
    # Marks are kept per inbox URL and the bigger server listens on another port: carry
    # the mark over, as if the same server had been restarted with more mail.
    set_lore_mark(db, lore_two_months.url, stored_mark(db, lore_august.url))

    report = sync(db, cfg, client=client(lore_two_months.url), now=OCT_2)

    september = {m.msgid for m in september_mails}
    assert not september & august
    assert set(report.ingest.added_msgids) == september
    assert stored(db) == august | september
    assert report.ingest.duplicates > 0  # the overlap window was fetched again …
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 336 + 630  # … not stored


@pytest.mark.lore
def test_old_threads_and_earlier_versions_come_along(
    tmp_path, db, lore_two_months, august_mails, september_mails
):
    cfg = config(tmp_path, lore_two_months.url)
    report = sync(db, cfg, since=SEP_1, client=client(lore_two_months.url), now=OCT_2)
    have = stored(db)
    august = {m.msgid for m in august_mails}
    assert {m.msgid for m in september_mails} <= have
    assert report.context_threads > 0 and report.earlier_lookups > 0
    assert report.requests <= 6

    # A September reply whose thread started in August brings that thread's start along.
    roots = {m.refs[0] for m in september_mails if m.refs and m.refs[0] in august}
    assert len(roots) >= 5
    assert roots <= have
    threads = {t["root"]: t for t in threads_json(db)}
    for root in roots:
        assert any(m["msgid"] not in august for m in threads[root]["messages"])

    # A vN posted in September whose earlier version is in August (not in its thread) is linked.
    linked = _versions_posted_in_two_months(august_mails, september_mails)
    assert len(linked) >= 5, "the archive months hold too few such series"
    chains = {msgid: s for s in series_json(db) for msgid in _postings(s)}
    for new, old in linked:
        assert old in have
        assert chains[new]["id"] == chains[old]["id"], (new, old)

    # Nothing was pulled for no reason: every August mail stored is in one of those threads
    # or an earlier version's thread.
    assert len(have & august) < len(august)


def _versions_posted_in_two_months(august_mails, september_mails) -> list[tuple[str, str]]:
    """(September vN head, August earlier posting) pairs by b4's rules, not in one thread."""
    postings = [(m, b4.LoreSubject(m.subject)) for m in august_mails]
    postings = [(m, s) for m, s in postings if not s.reply and s.counter <= 1]
    pairs = []
    for head in september_mails:
        subject = b4.LoreSubject(head.subject)
        if subject.reply or subject.revision < 2 or subject.counter > 1:
            continue
        for old, old_subject in postings:
            same = old.sender == head.sender and old_subject.subject == subject.subject
            if same and old_subject.revision < subject.revision and old.msgid not in head.refs:
                pairs.append((head.msgid, old.msgid))
    return pairs


def _postings(series: dict) -> list[str]:
    out = []
    for version in series["versions"]:
        out += [version["cover"]] if version["cover"] else []
        out += [p["msgid"] for p in version["patches"]]
    return out


@pytest.mark.lore
def test_first_run_pulls_the_last_14_days(tmp_path, db, lore_two_months, september_mails):
    now = datetime(2020, 9, 20, tzinfo=UTC)
    cfg = config(tmp_path, lore_two_months.url)
    report = sync(db, cfg, client=client(lore_two_months.url), now=now)
    window = [m for m in september_mails if now - timedelta(days=14) <= m.received <= now]
    assert report.since == now - timedelta(days=14) and report.until == now
    assert report.window == len(window)
    assert {m.msgid for m in window} <= stored(db)
    assert report.high_water == max(m.received for m in window)


@pytest.mark.lore
def test_since_asks_only_for_what_is_not_stored_yet(tmp_path, db, lore_two_months, september_mails):
    cfg = config(tmp_path, lore_two_months.url)
    lore = client(lore_two_months.url)
    sep_10, sep_15, sep_20 = (datetime(2020, 9, d, tzinfo=UTC) for d in (10, 15, 20))
    sync(db, cfg, since=sep_10, client=lore, now=sep_20)
    mark = stored_mark(db, lore.url)
    assert mark.covered_from == sep_10 and sep_15 < mark.high_water <= sep_20

    inside = sync(db, cfg, since=sep_15, client=lore, now=OCT_2)  # already covered
    assert inside.since == mark.high_water - timedelta(days=2)
    mark = stored_mark(db, lore.url)
    assert mark.covered_from == sep_10 and mark.high_water > datetime(2020, 9, 30, tzinfo=UTC)

    earlier = sync(db, cfg, since=SEP_1, client=lore, now=OCT_2)  # extends the range back
    assert earlier.since == SEP_1 and earlier.ingest.added > 0
    assert stored_mark(db, lore.url).covered_from == SEP_1
    assert {m.msgid for m in september_mails if m.received >= SEP_1} <= stored(db)


class _StopServerAfterSearch:
    """A progress sink that stops the lore server when the sync moves past its first phase
    (the window search) to the next request."""

    def __init__(self, server: lore_server.LoreServer) -> None:
        self.server = server
        self.phases: list[str] = []

    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, description: str) -> None:
        self.phases.append(description)
        if len(self.phases) == 2:
            self.server.stop()


@pytest.mark.lore
def test_a_server_that_dies_mid_sync_leaves_nothing_half_written(tmp_path, lore_two_months):
    cfg = config(tmp_path, lore_two_months.url)
    db = open_db(cfg.db)
    stopper = _StopServerAfterSearch(lore_two_months)
    try:
        with pytest.raises(LoreUnreachable, match="connection refused"):
            sync(db, cfg, since=SEP_1, client=client(cfg.lore_url), progress=stopper, now=OCT_2)
    finally:
        lore_two_months.start()
    assert len(stopper.phases) == 2 and stopper.phases[0].startswith("lore: mail received")
    assert stored(db) == set()
    assert get_lore_mark(db, cfg.lore_url) is None
    last = get_state(db, "last_sync")
    assert not last["ok"] and "cannot reach" in last["errors"][0]

    rerun = sync(db, cfg, since=SEP_1, client=client(cfg.lore_url), now=OCT_2)
    reference = open_db(tmp_path / "reference.db")
    sync(reference, cfg, since=SEP_1, client=client(cfg.lore_url), now=OCT_2)
    assert rerun.ingest.added > 630
    assert stored(db) == stored(reference)
    assert get_state(db, "last_sync")["ok"]


# --- a flaky server ------------------------------------------------------------------------------


def test_rate_limits_and_errors_are_retried_then_stored(tmp_path, db):
    waits: list[float] = []
    good = Reply(200, mbox_gz(mail("a@x"), mail("b@x", "[PATCH] KVM: arm64: other")))
    replies = [Reply(429, headers={"Retry-After": "5"}), Reply(500), good]
    with FakeLore(*replies) as lore:
        report = sync(
            db, config(tmp_path, lore.url), client=LoreClient(lore.url, sleep=waits.append)
        )
    assert waits == [5.0, 2.0]
    assert stored(db) == {"a@x", "b@x"}
    assert report.requests == 3


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply(500), LoreHTTPError, "HTTP 500"),
        (Reply(429, headers={"Retry-After": "1"}), LoreHTTPError, "HTTP 429"),
        (Reply(200, mbox_gz(mail("a@x")), delay=1.0), LoreUnreachable, "timeout"),
        (Reply(200, b"<html>not an mbox</html>"), LoreError, "unreadable answer"),
    ],
)
def test_a_server_that_keeps_failing_gives_a_clear_error_and_no_writes(
    tmp_path, db, reply, error, message
):
    with FakeLore(reply) as lore:
        lore_client = LoreClient(lore.url, sleep=lambda _s: None, retries=2, timeout=0.3)
        with pytest.raises(error, match=message):
            sync(db, config(tmp_path, lore.url), client=lore_client)
        assert len(lore.requests) == 3
    assert stored(db) == set()
    assert get_lore_mark(db, lore.url) is None
    assert message in get_state(db, "last_sync")["errors"][0]


def test_threads_lore_lacks_cost_one_request_and_change_nothing(tmp_path, db):
    reply = mail("r@x", "Re: [PATCH] KVM: arm64: old", refs=("gone@x",))
    with FakeLore(Reply(200, mbox_gz(reply)), Reply(404, b"No results found")) as lore:
        report = sync(db, config(tmp_path, lore.url), client=client(lore.url))
    assert report.context_threads == 1 and report.requests == 2
    assert "m%3A%22r%40x%22" in lore.requests[1].path  # asked for the reply's own thread
    assert stored(db) == {"r@x"}


# --- the command line -------------------------------------------------------------------------


def _kvmarm(tmp_path: Path, url: str, *args: str):
    env = {"KVMARM_LORE_URL": url, "KVMARM_CONFIG": str(tmp_path / "none.toml"), "CI": "true"}
    (tmp_path / "none.toml").write_text("")
    return CliRunner().invoke(main, ["--db", str(tmp_path / "cli.db"), *args], env=env)


def test_cli_reports_a_failing_lore_in_one_clear_line(tmp_path):
    with FakeLore(Reply(403, b"forbidden")) as lore:
        result = _kvmarm(tmp_path, lore.url, "sync")
    assert result.exit_code == 1
    assert "sync from lore failed" in result.output and "HTTP 403" in result.output
    assert "Nothing was stored" in result.output
    assert "Traceback" not in result.output
    status = json.loads(_kvmarm(tmp_path, lore.url, "status", "--json").output)
    assert status["last_sync"]["ok"] is False and status["last_sync"]["messages"] == 0


@pytest.mark.lore
def test_cli_sync_and_status(tmp_path, lore_august):
    result = _kvmarm(tmp_path, lore_august.url, "sync", "--since", "2020-08-01", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ingest"]["added"] == 336 and report["requests"] >= 1
    status = json.loads(_kvmarm(tmp_path, lore_august.url, "status", "--json").output)
    last = status["last_sync"]
    assert {"at", "messages", "errors", "high_water"} <= set(last)
    assert last["messages"] == 336 and last["errors"] == []
    assert status["messages"] == 336
    human = _kvmarm(tmp_path, lore_august.url, "sync")
    assert human.exit_code == 0 and human.output.startswith("0 new messages")


def test_cli_sync_rejects_a_bad_since(tmp_path):
    result = _kvmarm(tmp_path, "http://127.0.0.1:9/kvmarm", "sync", "--since", "last tuesday")
    assert result.exit_code == 2 and "not an ISO 8601" in result.output


# --- public-inbox git mirror -------------------------------------------------------------------


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, env=git_env(), check=True)
    return done.stdout.strip()


@pytest.mark.lore
def test_git_mirror_backfill_reads_only_new_commits(tmp_path, db, lore_august, lore_two_months):
    mirror = tmp_path / "kvmarm-0.git"
    first = sync_git(db, mirror, clone_url=f"{lore_august.url}/0")
    assert first.fetched and first.since_commit is None
    assert first.ingest.seen == first.ingest.added == 336
    assert first.commit == _git("--git-dir", str(mirror), "rev-parse", "HEAD")

    # lore gained a month: the same history plus September's commits.
    _git("--git-dir", str(mirror), "remote", "set-url", "origin", f"{lore_two_months.url}/0")
    second = sync_git(db, mirror)
    assert second.fetched and second.since_commit == first.commit
    assert second.ingest.seen == second.ingest.added == 630  # only the new commits
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 966

    before = fingerprint(db)
    third = sync_git(db, mirror)
    assert third.ingest.seen == 0 and fingerprint(db) == before
    assert get_state(db, "last_sync")["high_water"] == second.commit


@pytest.mark.lore
def test_git_history_rewrite_reads_everything_again(tmp_path, db, lore_august):
    mirror = tmp_path / "m.git"
    sync_git(db, mirror, clone_url=f"{lore_august.url}/0")
    set_state(db, f"git_mark:{mirror}", {"commit": "0" * 40})
    report = sync_git(db, mirror, fetch=False)
    assert report.rewritten and report.ingest.seen == 336 and report.ingest.duplicates == 336


def test_git_errors_are_clear(tmp_path, db):
    with pytest.raises(SyncError, match=r"no such directory.*git clone --mirror"):
        sync_git(db, tmp_path / "missing.git")
    url = f"http://127.0.0.1:{lore_server.free_port()}/kvmarm/0"
    with pytest.raises(SyncError, match=r"git clone .* failed"):
        sync_git(db, tmp_path / "x.git", clone_url=url)
    assert stored(db) == set()
    assert get_state(db, "last_sync")["ok"] is False


@pytest.mark.lore
def test_cli_git_clones_from_the_lore_url_when_the_mirror_is_missing(tmp_path, lore_august):
    mirror = tmp_path / "kvmarm" / "0.git"
    result = _kvmarm(tmp_path, lore_august.url, "sync", "--git", str(mirror))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("336 new messages")
    again = _kvmarm(tmp_path, lore_august.url, "sync", "--git", str(mirror))
    assert again.output.startswith("0 new messages") and "0 commits read" in again.output


def test_digest_pulls_its_week_from_lore_first(tmp_path, lore_august):
    """The README's main command: `kvmarm digest` on an empty database syncs, then prints."""
    result = _kvmarm(tmp_path, lore_august.url, "digest", "--week", "2020-W33", "--extractive")
    assert result.exit_code == 0, result.output
    assert "pulled" in result.stderr and "new mails from lore" in result.stderr
    assert "2020-W33" in result.stdout and "## Totals" in result.stdout
    stored = _kvmarm(tmp_path, lore_august.url, "status", "--json")
    assert json.loads(stored.output)["messages"] > 0
    offline = _kvmarm(
        tmp_path, lore_august.url, "digest", "--week", "2020-W33", "--extractive", "--offline"
    )
    assert offline.exit_code == 0 and offline.stdout == result.stdout


def test_digest_without_lore_says_so_and_post_refuses(tmp_path):
    with FakeLore(Reply(403, b"forbidden")) as lore:
        digest = _kvmarm(tmp_path, lore.url, "digest", "--week", "2020-W33")
        post = CliRunner().invoke(
            main,
            ["--db", str(tmp_path / "cli.db"), "post", "--channel", "C1", "--week", "2020-W33"],
            env={
                "KVMARM_LORE_URL": lore.url,
                "KVMARM_CONFIG": str(tmp_path / "none.toml"),
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_API_URL": "http://127.0.0.1:9/api/",
                "KVMARM_CHANNEL": "C1",
            },
        )
    assert digest.exit_code == 0
    assert "warning: could not pull from lore" in digest.stderr
    assert post.exit_code == 1 and "Not posting a week that may be incomplete" in post.output
