"""Mail that could poison derivation: missing or mangled Dates and threading headers.

Derivation covers all stored mail, so one mail that makes it raise would break every later
ingest.  ``derive`` must not raise on any of it; if it still does, ``derive_safely`` sets the
mail aside with the reason and derives the rest.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.sync.pipeline import ingest_mails
from ingest.derive import Derived, derive
from ingest.parse import parse_mail
from ingest.records import MalformedMail, Message
from ingest.setaside import derive_safely
from ingest.sources import RawMail as _RawMail
from ingest.sources import iter_raw_mails
from storage.db import open_db
from storage.views import series_json, status_json
from tests.facts_dump import assert_same_as_full
from tests.shared import shared_data_dir

FIXTURES = Path(__file__).parent / "fixtures" / "poison"


def test_undated_pull_naming_a_patch_whose_undated_v2_replies_to_v1(db) -> None:
    """This used to raise TypeError (None compared with a datetime) in every later ingest."""
    report = ingest_mails(db, iter_raw_mails(FIXTURES / "undated-pull.mbox"))
    assert report.added == 3
    by_id = {s["id"]: s for s in series_json(db)}
    assert len(by_id) == 2
    v1, v2 = by_id["fix-v1@example.org"]["versions"]
    assert (v1["version"], v1["status"]) == (1, "superseded")
    assert (v2["version"], v2["status"], v2["date"]) == (2, "pulled", None)
    # The pull names the patch: the newest version of it is the one pulled, not v1.
    assert v2["patches"][0]["pulled"]["msgid"] == "pull-fixes@example.org"
    assert v1["patches"][0]["pulled"] is None
    assert status_json(db, "x")["set_aside"] == 0


def _poison_if(marker: str):
    """A derivation with a bug that only one mail meets (the real derive otherwise)."""

    def derive_fn(messages: Sequence[Message]) -> Derived:
        if any(marker in m.subject.full for m in messages):
            raise TypeError("'<' not supported between instances of 'datetime' and 'NoneType'")
        return derive(messages)

    return derive_fn


def test_a_mail_that_breaks_derivation_is_set_aside_and_the_rest_derived() -> None:
    messages = [parse_mail(m.data).message for m in iter_raw_mails(FIXTURES / "undated-pull.mbox")]
    assert len(messages) == 3
    safe = derive_safely(messages, derive_fn=_poison_if("GIT PULL"))
    assert list(safe.set_aside) == ["pull-fixes@example.org"]
    assert safe.set_aside["pull-fixes@example.org"].startswith("derivation error: TypeError")
    rest = [m for m in messages if m.msgid != "pull-fixes@example.org"]
    assert safe.derived == derive(rest)
    assert [s.id for s in safe.derived.series] == ["fix-v1@example.org"]


def test_set_aside_mails_are_listed_by_status(db) -> None:
    from bot.sync.pipeline import DERIVE_VERSION
    from storage.derived import save_derived

    messages = [parse_mail(m.data).message for m in iter_raw_mails(FIXTURES / "undated-pull.mbox")]
    safe = derive_safely(messages, derive_fn=_poison_if("v2"))
    save_derived(
        db, safe.derived, version=DERIVE_VERSION, now=datetime.now(UTC), set_aside=safe.set_aside
    )
    status = status_json(db, "x")
    assert status["set_aside"] == 1
    [entry] = status["set_aside_list"]
    assert entry["msgid"] == "fix-v2@example.org"
    assert "TypeError" in entry["reason"]


# --- fuzz: real mail with its Date and threading headers removed or mangled -----------------

_HEADERS = ("Date", "References", "In-Reply-To", "Message-ID")
_MONTHS = ("kvmarm-2021-03.mbox.gz", "kvmarm-2022-01.mbox.gz")


@pytest.fixture(scope="module")
def real_mails() -> list[bytes]:
    folder = shared_data_dir() / "kvmarm-archive"
    mails = [m.data for name in _MONTHS for m in iter_raw_mails(folder / name)]
    assert len(mails) > 1000
    return mails


def _header_re(name: str) -> re.Pattern[bytes]:
    # The header line and its continuation lines, in the header block only.
    return re.compile(rb"(?im)^" + name.encode() + rb":[^\n]*\n(?:[ \t][^\n]*\n)*")


def _head_body(raw: bytes) -> tuple[bytes, bytes]:
    at = raw.find(b"\n\n")
    return (raw, b"") if at < 0 else (raw[: at + 1], raw[at + 1 :])


def _mangle(raw: bytes, rng: random.Random, ids: list[str]) -> bytes:
    head, body = _head_body(raw)
    for name in _HEADERS:
        roll = rng.random()
        if roll < 0.25:
            head = _header_re(name).sub(b"", head)
        elif roll < 0.45:
            head = _header_re(name).sub(_bad_value(name, rng, ids), head)
    return head + body


def _bad_value(name: str, rng: random.Random, ids: list[str]) -> bytes:
    other = rng.choice(ids)
    choices = {
        "Date": [
            "Date: yesterday\n",
            "Date: Mon, 32 Foo 99999 25:61:61 +9999\n",
            "Date: \n",
            "Date: Thu, 01 Jan 1970 00:00:00 +0000\n",
            "Date: Fri, 31 Dec 9999 23:59:59 -1400\n",
        ],
        "References": [
            f"References: <{other}> <{other}>\n",
            "References: garbage\n",
            f"References: <{other}>\n <{rng.choice(ids)}>\n",
            "References: <>\n",
        ],
        "In-Reply-To": [
            f"In-Reply-To: <{other}>\n",
            "In-Reply-To: <no-such@x>\n",
            "In-Reply-To: not an id\n",
        ],
        "Message-ID": [f"Message-ID: <{other}>\n", "Message-ID: <a@b>\n", "Message-ID: <>\n"],
    }
    return rng.choice(choices[name]).encode()


def _parsed(raws: list[bytes]) -> list[Message]:
    out = []
    for raw in raws:
        try:
            out.append(parse_mail(raw).message)
        except MalformedMail:
            continue  # quarantined by the pipeline: not derivation's business
    return out


@pytest.mark.parametrize("seed", range(6))
def test_derive_never_raises_on_mangled_real_mail(real_mails, seed) -> None:
    rng = random.Random(seed)
    sample = rng.sample(real_mails, 300)
    ids = [m.msgid for m in _parsed(sample[:50])] or ["x@y"]
    mangled = [_mangle(raw, rng, ids) for raw in sample]
    messages = _parsed(mangled)
    assert len(messages) > 150
    assert sum(m.date is None for m in messages) > 20
    derived = derive(messages)
    stored = {m.msgid for m in messages}
    assert set(derived.thread_of) == stored
    assert derive_safely(messages, derive_fn=derive).set_aside == {}


def test_incremental_derivation_of_mangled_real_mail_equals_a_full_one(real_mails, tmp_path):
    """The same mangled mail (missing and broken Dates, References, Message-IDs) ingested in
    four batches, each derived incrementally, gives what one full derivation gives."""
    rng = random.Random(11)
    sample = rng.sample(real_mails, 400)
    ids = [m.msgid for m in _parsed(sample[:50])] or ["x@y"]
    mangled = [_mangle(raw, rng, ids) for raw in sample]
    db = open_db(tmp_path / "inc.db")
    derived = []
    for i in range(4):
        batch = [_RawMail(raw, f"fuzz#{j}") for j, raw in enumerate(mangled[i::4])]
        derived.append(ingest_mails(db, batch).derived)
    stored = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert stored > 200 and 0 < derived[-1] < stored  # the last batch re-derived a part
    assert assert_same_as_full(db, tmp_path / "inc.db") > 20
