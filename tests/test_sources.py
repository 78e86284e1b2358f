"""ingest.sources: every input format in, RawMail out."""

from __future__ import annotations

import gzip
import os
import random
import re
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest

from ingest.sources import (
    RawMail,
    SourceError,
    count_bytes,
    detect_format,
    iter_git_epoch,
    iter_raw_mails,
    split_mbox,
)
from tests.shared import shared_data_dir

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
MBOXO = FIXTURES / "mboxo-from-escaping.mbox"
MBOXRD = FIXTURES / "mboxrd-from-escaping.mbox"


def read_all(path: Path) -> list[RawMail]:
    return list(iter_raw_mails(path))


def body_lines(mail: RawMail) -> list[bytes]:
    return mail.data.split(b"\n\n", 1)[1].splitlines()


# --- mbox -----------------------------------------------------------------------------------


def test_mboxo_unescapes_exactly_one_level_of_from() -> None:
    first, second = read_all(MBOXO)
    assert first.data.startswith(b"From: Alice <alice@example.org>\n")
    assert b"From foo" in body_lines(first)
    assert b">>From bar" in body_lines(first)
    assert b">From foo" not in first.data
    assert second.data.startswith(b"From: Bob")


def test_mboxrd_unescapes_one_level_of_every_quoted_from() -> None:
    first, _ = read_all(MBOXRD)
    assert body_lines(first)[1:] == [b"From foo", b">From bar"]


def test_mbox_strips_the_separator_newline_only() -> None:
    first, second = read_all(MBOXO)
    assert first.data.endswith(b">>From bar\n")
    # The last message's own empty line survives; only the separator's newline goes.
    assert second.data.endswith(b"then the separator.\n\n")


def test_mbox_without_blank_line_before_from_keeps_content() -> None:
    first, second = read_all(FIXTURES / "no-blank-before-from.mbox")
    assert first.data.endswith(b"next envelope line.\n")
    assert second.data.endswith(b"without a newline.")


def test_mbox_origin_numbers_messages_from_one() -> None:
    assert [m.origin for m in read_all(MBOXO)] == [f"{MBOXO}:#1", f"{MBOXO}:#2"]


def test_mbox_with_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.mbox"
    path.write_bytes(MBOXO.read_bytes().replace(b"\n", b"\r\n"))
    first, second = read_all(path)
    assert first.data.startswith(b"From: Alice")
    assert first.data.endswith(b">>From bar\r\n")
    assert second.data.endswith(b"separator.\r\n\r\n")


def test_gz_reads_like_the_plain_file(tmp_path: Path) -> None:
    for source in (MBOXO, MBOXRD):
        path = tmp_path / (source.name + ".gz")
        path.write_bytes(gzip.compress(source.read_bytes()))
        assert detect_format(path) == "mbox.gz"
        assert [m.data for m in read_all(path)] == [m.data for m in read_all(source)]
        assert count_bytes(path) == source.stat().st_size


def test_split_mbox_does_not_depend_on_chunk_boundaries() -> None:
    data = MBOXO.read_bytes() + MBOXRD.read_bytes()
    expected = list(split_mbox([data]))
    assert len(expected) == 4
    for size in (1, 2, 5, 6, 7, 64):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(split_mbox(chunks)) == expected


def test_truncated_gz_raises_source_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.mbox.gz"
    path.write_bytes(gzip.compress(MBOXO.read_bytes() * 50)[:-20])
    with pytest.raises(SourceError, match=re.escape(str(path))):
        read_all(path)


# --- single files and maildir ---------------------------------------------------------------


def test_eml_is_one_message_never_split_or_unescaped() -> None:
    path = FIXTURES / "single.eml"
    assert detect_format(path) == "eml"
    [mail] = read_all(path)
    assert mail == RawMail(path.read_bytes(), str(path))


def test_eml_with_envelope_line_loses_only_that_line() -> None:
    path = FIXTURES / "envelope.eml"
    [mail] = read_all(path)
    assert mail.data.startswith(b"From: Alice")
    assert mail.data.endswith(b"From here on it is body text, not a second message.\n")


def test_file_without_from_line_is_a_single_message() -> None:
    path = FIXTURES / "envelope-less.mbox"
    assert detect_format(path) == "eml"
    assert [m.data for m in read_all(path)] == [path.read_bytes()]


def make_maildir(root: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    (root / "new" / "2.host").write_bytes(b"Subject: new\n\nb\n")
    (root / "cur" / "1.host:2,S").write_bytes(b"Subject: cur 1\n\nc\n")
    (root / "cur" / "0.host:2,S").write_bytes(b"Subject: cur 0\n\nc\n")
    (root / "cur" / ".dovecot-keywords").write_bytes(b"0 $Junk\n")
    (root / "tmp" / "3.host").write_bytes(b"Subject: still being delivered\n\n")
    return root


def test_maildir_reads_cur_then_new_sorted_by_name(tmp_path: Path) -> None:
    maildir = make_maildir(tmp_path / "Maildir")
    assert detect_format(maildir) == "maildir"
    mails = read_all(maildir)
    assert [m.data.split(b"\n", 1)[0] for m in mails] == [
        b"Subject: cur 0",
        b"Subject: cur 1",
        b"Subject: new",
    ]
    assert mails[2].origin == str(maildir / "new" / "2.host")
    assert count_bytes(maildir) == sum(len(m.data) for m in mails)


# --- what is not mail -----------------------------------------------------------------------


def test_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    path.touch()
    with pytest.raises(SourceError, match="empty"):
        read_all(path)


def test_binary_garbage_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mbox"
    path.write_bytes(b"\x00\x01\xff" + random.Random(1).randbytes(4096))
    with pytest.raises(SourceError, match="not a mail file"):
        detect_format(path)


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_all(tmp_path / "nothing-here")


def test_directory_of_random_files_names_the_accepted_formats(tmp_path: Path) -> None:
    rng = random.Random(7)
    for i in range(5):
        (tmp_path / f"file{i}.bin").write_bytes(rng.randbytes(100))
    with pytest.raises(SourceError, match="maildir") as error:
        read_all(tmp_path)
    assert str(tmp_path) in str(error.value)


# --- public-inbox git -----------------------------------------------------------------------


def mail(n: int) -> bytes:
    return f"From: a@example.org\nMessage-ID: <{n}@example.org>\n\nmail {n}\n".encode()


def fast_import_stream(first: int, count: int, delete_second: bool) -> bytes:
    """A public-inbox v2 history: one commit per mail (blob `m`); a deletion moves it to `d`."""
    out: list[bytes] = []
    for i in range(count):
        out.append(_commit(first + i, b"D d\n" + _inline("m", mail(first + i))))
        if delete_second and i == 1:
            out.append(_commit(first + i, b"D m\n" + _inline("d", mail(first + i))))
    return b"".join(out)


def _commit(n: int, changes: bytes) -> bytes:
    who = f"a <a@example.org> {1_600_000_000 + n} +0000"
    header = f"commit refs/heads/master\nauthor {who}\ncommitter {who}\ndata 2\nm\n"
    return header.encode() + changes


def _inline(path: str, data: bytes) -> bytes:
    return f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


def make_epoch(path: Path, first: int, count: int, delete_second: bool = False) -> list[str]:
    """Build a bare epoch with `git fast-import`; return its commits, oldest first."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "master", str(path)], check=True, env=env)
    stream = fast_import_stream(first, count, delete_second)
    git = ["git", "--git-dir", str(path)]
    subprocess.run([*git, "fast-import", "--quiet"], input=stream, check=True, env=env)
    revs = subprocess.run([*git, "rev-list", "--reverse", "HEAD"], capture_output=True, env=env)
    return revs.stdout.decode().split()


@pytest.fixture
def epoch(tmp_path: Path) -> tuple[Path, list[str]]:
    """3 mails and 1 deletion: commits mail 0, mail 1, delete mail 1, mail 2."""
    path = tmp_path / "0.git"
    return path, make_epoch(path, first=0, count=3, delete_second=True)


def test_git_epoch_yields_mails_oldest_first_and_skips_deletions(
    epoch: tuple[Path, list[str]],
) -> None:
    path, commits = epoch
    assert detect_format(path) == "git"
    assert len(commits) == 4
    got = list(iter_git_epoch(path))
    assert [sha for sha, _ in got] == [commits[0], commits[1], commits[3]]
    assert [m.data for _, m in got] == [mail(0), mail(1), mail(2)]
    assert got[0][1].origin == f"{path}@{commits[0]}"
    assert [m.data for m in read_all(path)] == [mail(0), mail(1), mail(2)]


def test_git_epoch_since_commit_reads_only_newer_commits(epoch: tuple[Path, list[str]]) -> None:
    path, commits = epoch
    assert [sha for sha, _ in iter_git_epoch(path, since_commit=commits[0])] == [
        commits[1],
        commits[3],
    ]
    assert [sha for sha, _ in iter_git_epoch(path, since_commit=commits[2])] == [commits[3]]
    assert list(iter_git_epoch(path, since_commit=commits[3])) == []


def test_git_epoch_unknown_since_commit_raises(epoch: tuple[Path, list[str]]) -> None:
    path, _ = epoch
    with pytest.raises(SourceError, match="git failed"):
        list(iter_git_epoch(path, since_commit="f" * 40))


def test_git_ignores_global_config(
    epoch: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".gitconfig").write_text("[broken\n")
    (home / ".config" / "git" / "config").write_text("[broken\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    path, _ = epoch
    assert len(list(iter_git_epoch(path))) == 3


def test_git_stops_cleanly_when_the_reader_stops(epoch: tuple[Path, list[str]]) -> None:
    path, commits = epoch
    mails = iter_git_epoch(path)
    assert isinstance(mails, Generator)  # close() is how a reader stops it early
    assert next(mails)[0] == commits[0]
    mails.close()  # must kill and reap both git processes without hanging


def test_v2_inbox_reads_epochs_in_numeric_order(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    first = make_epoch(inbox / "git" / "0.git", first=0, count=3, delete_second=True)
    make_epoch(inbox / "git" / "10.git", first=10, count=1)
    second = make_epoch(inbox / "git" / "2.git", first=2, count=1)
    make_epoch(inbox / "all.git", first=99, count=1)  # all.git is not an epoch
    assert detect_format(inbox) == "git"
    expected = [mail(0), mail(1), mail(2), mail(2), mail(10)]
    assert [m.data for m in read_all(inbox)] == expected
    assert [m.data for _, m in iter_git_epoch(inbox, since_commit=first[-1])] == expected[3:]
    assert [m.data for _, m in iter_git_epoch(inbox, since_commit=second[0])] == expected[4:]
    assert [m.data for m in read_all(inbox / "all.git")] == expected
    assert count_bytes(inbox) >= sum(len(m) for m in expected)


def test_empty_epoch_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "1.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    assert list(iter_git_epoch(path)) == []


# --- real mail (../shared/data) ---------------------------------------------------------------


@pytest.mark.shared
def test_patchwork_mail_and_fuzz_files_yield_mail_or_source_error() -> None:
    patchwork = shared_data_dir() / "fixtures" / "patchwork"
    files = sorted([*patchwork.glob("fuzz/*"), *patchwork.glob("mail/*")])
    assert len(files) > 40
    for path in files:
        try:
            mails = read_all(path)
        except SourceError:
            continue
        assert mails, path
        assert all(m.data for m in mails), path


@pytest.mark.shared
def test_archive_month_counts_match_from_lines() -> None:
    archive = sorted((shared_data_dir() / "kvmarm-archive").glob("*.mbox.gz"))
    assert len(archive) == 35
    total = 0
    for path in archive:
        text = gzip.decompress(path.read_bytes())
        from_lines = text.count(b"\nFrom ") + text.startswith(b"From ")  # grep -c '^From '
        mails = read_all(path)
        assert len(mails) == from_lines, path
        assert all(m.data.startswith(b"Return-Path: ") for m in mails), path
        total += len(mails)
    assert total == 16654
