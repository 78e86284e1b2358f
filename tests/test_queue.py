"""The review queue and idle rules (storage/queue.py) on small hand-built series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.commands.answers import Sources, answer
from bot.commands.grammar import parse_command
from bot.commands.render_text import render_text
from storage.queue import IDLE_DAYS, idle_series, idle_since, status_as_of, waiting_versions
from storage.views import series_json
from tests.mailkit import ANN, BOB, MARC, MailKit, at

T0 = at("2022-01-03")
TITLE = "KVM: arm64: Widget support"


@pytest.fixture
def queue_db(tmp_path):
    kit = MailKit()
    _cover, p1, _p2, _p3 = kit.posting("w", TITLE, ANN, T0, 3)
    kit.reply(
        "r1@example.org",
        p1,
        f"[PATCH 1/3] {TITLE} part 1",
        MARC,
        T0 + timedelta(days=2),
        "Looks fine.\n\nReviewed-by: Marc Zyngier <maz@kernel.org>\n",
    )
    # A second series, fully reviewed: never waits.
    _c, q1 = kit.posting("g", "KVM: arm64: Gadget", BOB, T0, 1)
    kit.reply(
        "r2@example.org",
        q1,
        "[PATCH 1/1] KVM: arm64: Gadget part 1",
        MARC,
        T0 + timedelta(days=1),
        "Acked-by: Marc Zyngier <maz@kernel.org>\n",
    )
    # A third one, applied on day 9.
    _c3, a1 = kit.posting("a", "KVM: arm64: Applied thing", BOB, T0, 1)
    kit.reply(
        "r3@example.org",
        a1,
        "[PATCH 1/1] KVM: arm64: Applied thing part 1",
        MARC,
        T0 + timedelta(days=9),
        "Applied to next, thanks!\n",
    )
    db = kit.store(tmp_path / "q.db", T0 + timedelta(days=300))
    yield db
    db.close()


def _ids(db, title_part: str) -> str:
    return db.execute("SELECT id FROM series WHERE title LIKE ?", [f"%{title_part}%"]).fetchone()[0]


def test_waiting_after_seven_days_with_the_unreviewed_patches(queue_db):
    queue = waiting_versions(queue_db, T0 + timedelta(days=10))
    assert [w.title for w in queue] == [TITLE]
    [w] = queue
    assert (w.version, w.patches, w.unreviewed, w.reviewed) == (1, 3, (2, 3), 1)
    assert w.days_waiting == 10
    assert w.author_email == "ann@example.org"
    assert w.status == "new"


def test_not_waiting_before_seven_days(queue_db):
    titles = [w.title for w in waiting_versions(queue_db, T0 + timedelta(days=6))]
    assert titles == []


def test_applied_leaves_the_queue_from_its_date_on(queue_db):
    before = [w.title for w in waiting_versions(queue_db, T0 + timedelta(days=8))]
    after = [w.title for w in waiting_versions(queue_db, T0 + timedelta(days=10))]
    assert "KVM: arm64: Applied thing" in before
    assert "KVM: arm64: Applied thing" not in after


def test_a_review_given_after_as_of_does_not_count(queue_db):
    [w] = [w for w in waiting_versions(queue_db, T0 + timedelta(days=8)) if w.title == TITLE]
    assert w.unreviewed == (2, 3)
    early = waiting_versions(queue_db, T0 + timedelta(days=1, hours=12), min_days=1)
    [w] = [w for w in early if w.title == TITLE]
    assert w.unreviewed == (1, 2, 3)  # Marc's Reviewed-by came on day 2


def test_turning_idle_leaves_the_queue(queue_db):
    sid = _ids(queue_db, "Widget")
    last = "2022-01-05"  # Marc's review, the series' last mail
    still = T0 + timedelta(days=2 + IDLE_DAYS - 1)
    idle = T0 + timedelta(days=2 + IDLE_DAYS + 1)
    assert sid in {w.series_id for w in waiting_versions(queue_db, still)}
    assert sid not in {w.series_id for w in waiting_versions(queue_db, idle)}
    assert idle_series(queue_db, [sid], still) == {}
    assert idle_series(queue_db, [sid], idle) == {sid: last}


def test_applied_series_is_never_idle(queue_db):
    sid = _ids(queue_db, "Applied thing")
    assert idle_series(queue_db, [sid], T0 + timedelta(days=400)) == {}
    # …but before it was applied, it could have been.
    assert idle_since("2021-01-01T00:00:00Z", "new", T0) == "2021-01-01"


def test_status_as_of_ignores_later_evidence():
    evidence = [{"date": "2022-01-12T10:00:00Z"}]
    assert status_as_of("applied", evidence, at("2022-01-12", 9)) == "new"
    assert status_as_of("applied", evidence, at("2022-01-12", 11)) == "applied"
    assert status_as_of("applied", [{"date": None}], at("2020-01-01")) == "applied"


def test_a_newer_version_replaces_the_older_in_the_queue(tmp_path):
    kit = MailKit()
    kit.posting("s", TITLE, ANN, T0, 2)
    kit.posting("s", TITLE, ANN, T0 + timedelta(days=3), 2, version=2)
    db = kit.store(tmp_path / "v.db", T0 + timedelta(days=30))
    early = waiting_versions(db, T0 + timedelta(days=8))
    assert [(w.version, w.days_waiting) for w in early] == []  # v2 is only 5 days old
    late = waiting_versions(db, T0 + timedelta(days=11))
    assert [(w.version, w.days_waiting) for w in late] == [(2, 8)]
    db.close()


# ---- idle is a status in `series --json` and in answers, as of a moment -----------------------


def test_series_json_says_idle_as_of(queue_db):
    sid = _ids(queue_db, "Widget")
    [fresh] = series_json(queue_db, ids=[sid], as_of=T0 + timedelta(days=10))
    assert (fresh["status"], fresh["idle_since"]) == ("new", None)
    [old] = series_json(queue_db, ids=[sid], as_of=T0 + timedelta(days=200))
    assert (old["status"], old["idle_since"]) == ("idle", "2022-01-05")
    assert old["versions"][-1]["idle_since"] == "2022-01-05"
    assert old["versions"][-1]["status"] == "new"  # the stored fact; idle is read-time
    [applied] = series_json(
        queue_db, ids=[_ids(queue_db, "Applied")], as_of=T0 + timedelta(days=200)
    )
    assert applied["status"] == "applied" and applied["idle_since"] is None
    [timeless] = series_json(queue_db, ids=[sid])
    assert timeless["idle_since"] is None


def test_answers_say_idle_since_never_new(queue_db):
    later = Sources(clock=lambda: T0 + timedelta(days=200))
    text = render_text(answer(queue_db, parse_command("series Widget support"), later))
    assert "idle since 2022-01-05" in text
    assert "new" not in text.split("idle since")[0].splitlines()[-1]
    sooner = Sources(clock=lambda: T0 + timedelta(days=10))
    text = render_text(answer(queue_db, parse_command("thread Widget support"), sooner))
    assert "idle since" not in text and "new" in text


def test_a_stored_idle_reads_as_what_lies_under_it_as_of_earlier():
    idle = {"kind": "idle", "date": "2022-05-01T00:00:00Z", "where": "no mail since 2022-01-31"}
    asked = {"kind": "respin", "date": "2022-01-20T00:00:00Z"}
    assert status_as_of("idle", [idle], at("2022-01-25")) == "new"
    assert status_as_of("idle", [idle, asked], at("2022-01-25")) == "changes-requested"
    assert status_as_of("idle", [idle, asked], at("2022-01-10")) == "new"
