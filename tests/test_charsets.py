"""Unknown or bogus charsets: the mail is stored (never quarantined), its text read as UTF-8,
else Latin-1, and the problem recorded.  8-bit bodies, as such mail really arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sync.pipeline import ingest_mails
from ingest.parse import parse_mail, text_codec
from ingest.sources import RawMail
from storage.messages import get_body
from storage.views import status_json

MAIL = (Path(__file__).parent / "fixtures" / "charsets" / "unknown-8bit.eml").read_bytes()


def _with_charset(charset: str, body: bytes | None = None) -> bytes:
    raw = MAIL.replace(b"charset=unknown-8bit", b"charset=" + charset.encode())
    if body is not None:
        head, _, _ = raw.partition(b"\n\n")
        raw = head + b"\n\n" + body
    return raw


@pytest.mark.parametrize("charset", ["unknown-8bit", "x-made-up", "rot13", "idna", "undefined"])
def test_unknown_charset_with_latin_1_bytes_is_stored_as_latin_1(db, charset) -> None:
    report = ingest_mails(db, [RawMail(_with_charset(charset), "test")])
    assert (report.added, report.quarantined) == (1, 0)
    body = get_body(db, "unknown-8bit@example.org")
    assert body is not None and "Jörg says the café is closed, naïve fix below." in body
    [problems] = db.execute("SELECT problems FROM messages").fetchone()
    assert f"unknown charset '{charset}', decoded as Latin-1" in problems
    assert status_json(db, "x")["with_problems"] == 1


def test_unknown_charset_with_utf_8_bytes_is_read_as_utf_8() -> None:
    raw = _with_charset("unknown-8bit", "Jörg's café, naïve ✓\n".encode())
    parsed = parse_mail(raw)
    assert parsed.content.body.strip() == "Jörg's café, naïve ✓"
    assert parsed.message.problems == ("body: unknown charset 'unknown-8bit', decoded as UTF-8",)


def test_encoded_words_in_an_unknown_charset_decode_the_same_way() -> None:
    parsed = parse_mail(_with_charset("utf-8", b"hello\n"))
    assert parsed.message.sender.name == "Jörg Rödel"  # =?unknown-8bit?q?J=F6rg_R=F6del?=


def test_known_charsets_still_decode_as_declared() -> None:
    parsed = parse_mail(_with_charset("iso-8859-15", b"Prix: 5 \xa4\n"))
    assert parsed.content.body.strip() == "Prix: 5 €" and parsed.message.problems == ()
    bad = parse_mail(_with_charset("utf-8"))
    assert "J\ufffdrg" in bad.content.body
    assert bad.message.problems == ("body: not valid utf-8, decoded with replacement characters",)


def test_text_codec_looks_the_name_up_for_real() -> None:
    assert b"".decode("unknown-8bit") == ""  # why the old check never failed
    assert text_codec("unknown-8bit") is None and text_codec("base64") is None
    assert text_codec("UTF-8") == "utf-8" and text_codec("latin1") == "iso8859-1"
