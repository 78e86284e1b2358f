"""Differential checks against b4 itself on real kvmarm mail.

Our parse takes two shortcuts for speed (a header-only parse plus direct body decoding for
single-part mail, and a copy of b4's trailer loop without its quadratic regex); these tests
run both ways on three months of the archive and require identical results.  They also
compare the follow-up trailers our ledger attributes to each patch with what b4's
LoreMailbox.get_series() attributes, thread by thread.
"""

from __future__ import annotations

import email
import email.policy
import logging
import zlib

import b4
import pytest

from bot.sync.pipeline import ingest_mails
from ingest import bodies
from ingest import parse as P
from ingest.b4rules import _candidate_lines, find_trailers
from ingest.parse import is_bot
from ingest.records import Person
from ingest.sources import iter_raw_mails
from storage.db import open_db
from storage.views import series_json
from tests.shared import shared_data_dir

MONTHS = ("2019-10", "2020-11", "2021-06")


def _mails():
    for month in MONTHS:
        yield from iter_raw_mails(shared_data_dir() / "kvmarm-archive" / f"kvmarm-{month}.mbox.gz")


def test_fast_body_path_equals_full_parse() -> None:
    checked = 0
    for mail in _mails():
        head, body = P._split_head(mail.data)
        msg = P._HEADER_PARSER.parsebytes(P._wanted_headers(head))
        if msg.get_content_maintype() == "multipart":
            continue
        fast = P._body_text(mail.data, msg, body, [])
        full = email.message_from_bytes(mail.data, policy=email.policy.compat32)
        slow = P._multipart_text(full, [])
        assert fast == bodies.strip_list_footer(slow), mail.origin
        for name in ("Message-ID", "Subject", "From", "Date", "In-Reply-To", "References"):
            assert msg.get(name) == full.get(name), (mail.origin, name)
        checked += 1
    assert checked > 1500


@pytest.mark.parametrize("followup", [False, True])
def test_trailer_loop_equals_b4_find_trailers(followup: bool) -> None:
    def key(trailers):
        return [(t.name, t.value, t.extinfo, t.type, t.addr) for t in trailers]

    for mail in _mails():
        head, body = P._split_head(mail.data)
        msg = P._HEADER_PARSER.parsebytes(P._wanted_headers(head))
        text = bodies.split_body(P._body_text(mail.data, msg, body, [])).message
        ours = find_trailers(_candidate_lines(text), followup=followup)
        theirs, _others = b4.LoreMessage.find_trailers(text, followup=followup)
        assert key(ours) == key(theirs), mail.origin


@pytest.fixture(scope="module")
def months_db(tmp_path_factory):
    db = open_db(tmp_path_factory.mktemp("b4eq") / "k.db")
    ingest_mails(db, _mails())
    return db


def test_followup_trailers_match_b4_mailbox(months_db) -> None:
    """Deliberate differences (README, "where we deliberately differ"): trailers sent by
    robots never count; trailers in, or said in answer to, a reply that carries its own
    patch (a fixup) are about that fixup, not the patch above it; nobody reviews, acks or
    tests their own patch; a trailer whose words say what it covers ("For patches 2-3:",
    "for the whole series") covers that (tests/test_trailer_scope.py).  b4 attributes all of
    these to the patch.  So b4's set without them must be contained in ours, and ours in
    b4's full set, once trailers with scope words are set aside."""
    logging.getLogger("b4").setLevel(logging.CRITICAL)
    b4.can_network = False
    compared = 0
    scoped = {
        row[0]
        for row in months_db.execute("SELECT DISTINCT msgid FROM trailers WHERE scope IS NOT NULL")
    }
    assert scoped  # the three months have some
    for series in series_json(months_db):
        for v in series["versions"]:
            if not v["patches"] or v["partial_reroll_of"] or v["category"] == "PULL":
                continue
            mbox, lser = _b4_series(months_db, v["thread"], v["version"])
            if lser is None:
                continue
            cover = lser.patches[0].followup_trailers if lser.patches[0] is not None else []
            ours = {p["msgid"]: p for p in v["patches"]}
            for lmsg in lser.patches[1:]:
                if lmsg is None or lmsg.msgid not in ours:
                    continue
                given = [
                    t
                    for t in lmsg.followup_trailers + cover
                    if _counts(t) and t.lmsg.msgid not in scoped
                ]
                everything = {_key(t) for t in given}
                without_patches = {
                    _key(t)
                    for t in given
                    if not _about_a_fixup(t.lmsg, mbox) and t.addr[1].lower() != lmsg.fromemail
                }
                mine = {
                    (t["type"].lower(), t["email"])
                    for t in ours[lmsg.msgid]["trailers"]
                    if t["source"] in ("reply", "cover") and t["email"] and t["msgid"] not in scoped
                }
                assert without_patches <= mine <= everything, (v["key"], lmsg.msgid)
                compared += 1
    assert compared > 500


def _b4_series(db, root: str, version: int):
    mbox = b4.LoreMailbox()
    for (raw,) in db.execute(
        "SELECT c.raw FROM memberships m JOIN message_content c ON c.msgid = m.msgid "
        "WHERE m.thread_root = ?",
        [root],
    ):
        mbox.add_message(email.message_from_bytes(zlib.decompress(raw), policy=b4.emlpolicy))
    return mbox, mbox.get_series(version, codereview_trailers=False)


def _about_a_fixup(lmsg, mbox) -> bool:
    """The trailer's message carries a patch, or answers (through replies) one that does."""
    seen = set()
    while lmsg is not None and lmsg.msgid not in seen:
        seen.add(lmsg.msgid)
        if lmsg.has_diff and lmsg.reply:
            return True
        if lmsg.has_diff or lmsg.in_reply_to is None:
            return False
        lmsg = mbox.msgid_map.get(lmsg.in_reply_to)
    return False


def _key(t) -> tuple[str, str]:
    return (t.lname, t.addr[1].lower())


def _counts(t) -> bool:
    if t.type != "person" or not t.addr:
        return False
    sender = t.lmsg
    return sender is None or not is_bot(Person(sender.fromname, sender.fromemail.lower()))
