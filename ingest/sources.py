"""Read raw mails from every input format: mbox, mbox.gz, maildir, one .eml, public-inbox git.

Pure in the sense of the ingest package: bytes in, `RawMail` records out; no parsing, no
SQLite, no network. Formats are recognised by content, not by file name (except `.eml`).

mbox files are streamed in 1 MiB chunks and split on lines starting with ``From `` — the way
mail tools write them (every message in the kvmarm archive is preceded by a blank line and a
``From `` envelope line). Files whose first line is ``From mboxrd@z …`` (lore/public-inbox
downloads, b4) are mboxrd: every ``>+From `` body line loses one ``>``. Any other mbox is
mboxo: only ``>From `` becomes ``From `` (``>>From `` stays, mboxo cannot tell it apart).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import subprocess
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20
_SEPARATOR = b"\nFrom "
_MBOXRD_FIRST_LINE = b"From mboxrd@z "
_MBOXRD_ESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)
_MBOXO_ESCAPE = re.compile(rb"^>(From )", re.MULTILINE)
# RFC 5322 field name (printable ASCII but ":"), optional obsolete blanks, then ":".
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]{1,200}[ \t]*:")
_GZIP_MAGIC = b"\x1f\x8b"
_EPOCH_NAME = re.compile(r"(\d+)\.git")
_ACCEPTED = "an mbox or mbox.gz file, a single-message file (.eml), a maildir (cur/, new/), "
_ACCEPTED += "a public-inbox git epoch (bare repository) or a public-inbox v2 inbox (git/0.git …)"
# Variables that would make git look at another repository than the one we name.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
)


@dataclass(frozen=True, slots=True)
class RawMail:
    """One message as bytes, and where it came from (for error messages)."""

    data: bytes  # RFC 822 bytes: no mbox envelope line, mbox escaping undone
    origin: str  # "archive.mbox.gz:#17" (1-based), "maildir/cur/x", "0.git@<commit sha>"


class SourceError(Exception):
    """An input path cannot be read as mail: the message says which path and why."""


# --- format detection ---------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Return "mbox", "mbox.gz", "maildir", "eml" or "git" for `path`, else raise SourceError."""
    path = Path(path)
    if path.is_dir():
        return _detect_directory_format(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file or directory")
    return _detect_file_format(path, _read_head(path))


def _detect_directory_format(path: Path) -> str:
    if (path / "cur").is_dir() and (path / "new").is_dir():
        return "maildir"
    if _git_dirs(path):
        return "git"
    raise SourceError(f"{path}: directory is not a mail source; accepted: {_ACCEPTED}")


def _detect_file_format(path: Path, head: bytes) -> str:
    if not head:
        raise SourceError(f"{path}: file is empty")
    if head.startswith(_GZIP_MAGIC):
        if _gzip_head(path).startswith(b"From "):
            return "mbox.gz"
        raise SourceError(f"{path}: gzip file does not contain an mbox (no 'From ' first line)")
    if path.suffix.lower() == ".eml" and (head.startswith(b"From ") or _is_header_line(head)):
        return "eml"
    if head.startswith(b"From "):
        return "mbox"
    if _is_header_line(head):
        return "eml"
    raise SourceError(
        f"{path}: not a mail file (starts with neither a 'From ' line nor a header line);"
        f" accepted: {_ACCEPTED}"
    )


def _is_header_line(head: bytes) -> bool:
    return _HEADER_LINE.match(head) is not None


def _read_head(path: Path, size: int = 512) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from e


def _gzip_head(path: Path, size: int = 512) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(size)
    except (OSError, EOFError, zlib.error) as e:
        raise SourceError(f"{path}: corrupt gzip file: {e}") from e


# --- reading ------------------------------------------------------------------------------


def iter_raw_mails(path: Path) -> Iterator[RawMail]:
    """Yield every mail in `path` (any accepted format), in file / commit order."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "mbox":
        return _iter_mbox_file(path)
    if fmt == "mbox.gz":
        return _iter_mbox_gz(path)
    if fmt == "maildir":
        return _iter_maildir(path)
    if fmt == "eml":
        return _iter_eml(path)
    return (mail for _, mail in iter_git_epoch(path))


def count_bytes(path: Path) -> int:
    """Total mail bytes in `path`, for a progress bar advanced by `len(mail.data)`.

    Files and maildirs: their size on disk (uncompressed size for .gz). Git: the size of all
    blobs, i.e. every mail ever stored, deleted ones included (so a slight over-estimate).
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "mbox.gz":
        return _gzip_uncompressed_size(path)
    if fmt == "maildir":
        return sum(_file_size(f) for f in _maildir_files(path))
    if fmt == "git":
        return sum(_git_blob_bytes(d) for d in _git_dirs(path))
    return _file_size(path)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from e


def _gzip_uncompressed_size(path: Path) -> int:
    """ISIZE of the gzip trailer (uncompressed size mod 2**32), at least the file size."""
    try:
        with path.open("rb") as f:
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from e
    return max(isize, _file_size(path))


# --- mbox ---------------------------------------------------------------------------------


def _iter_mbox_file(path: Path) -> Iterator[RawMail]:
    try:
        with path.open("rb") as f:
            yield from _iter_mbox_stream(f, str(path))
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from e


def _iter_mbox_gz(path: Path) -> Iterator[RawMail]:
    try:
        with gzip.open(path, "rb") as f:
            yield from _iter_mbox_stream(f, str(path))
    except (OSError, EOFError, zlib.error) as e:
        raise SourceError(f"{path}: corrupt or truncated gzip file: {e}") from e


def _iter_mbox_stream(stream: BinaryIO | gzip.GzipFile, name: str) -> Iterator[RawMail]:
    chunks = _read_chunks(stream)
    first = next(chunks, b"")
    escape = _MBOXRD_ESCAPE if first.startswith(_MBOXRD_FIRST_LINE) else _MBOXO_ESCAPE
    messages = split_mbox(_prepend(first, chunks))
    for number, message in enumerate(messages, start=1):
        yield RawMail(unescape_mbox(message, escape), f"{name}:#{number}")


def _read_chunks(stream: BinaryIO | gzip.GzipFile) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def split_mbox(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split an mbox byte stream into messages, without envelope lines or separator newlines.

    A message starts at every line beginning with ``From ``. The blank line mbox writers put
    before the next envelope line is not part of the message: one trailing newline is dropped
    when the message ends with an empty line. Memory stays bounded by chunk + largest message.
    """
    buf = bytearray()
    for chunk in chunks:
        search = max(len(buf) - len(_SEPARATOR) + 1, 0)  # a separator may straddle chunks
        buf += chunk
        start = 0
        while (sep := buf.find(_SEPARATOR, search)) >= 0:
            yield _cut_message(buf, start, sep + 1)
            start = search = sep + 1
        del buf[:start]
    if buf:
        yield _cut_message(buf, 0, len(buf))


def _cut_message(buf: bytearray, start: int, end: int) -> bytes:
    """Copy buf[start:end] minus its first (envelope) line and its separator newline."""
    if buf.startswith(b"From ", start, end):
        start = (buf.find(b"\n", start, end) + 1) or end
    if buf.endswith(b"\r\n\r\n", start, end):
        end -= 2
    elif buf.endswith(b"\n\n", start, end):
        end -= 1
    with memoryview(buf) as view:
        return bytes(view[start:end])


def unescape_mbox(message: bytes, escape: re.Pattern[bytes] = _MBOXO_ESCAPE) -> bytes:
    """Undo one level of mbox ``>From `` quoting (`escape` is the mboxo or mboxrd rule)."""
    if b">From " not in message:
        return message
    return escape.sub(rb"\1", message)


# --- maildir and single files -------------------------------------------------------------


def _iter_maildir(path: Path) -> Iterator[RawMail]:
    for file in _maildir_files(path):
        yield RawMail(_strip_envelope(_read_bytes(file)), str(file))


def _maildir_files(path: Path) -> list[Path]:
    """Files of cur/ then new/, each sorted by name; dot files (maildir++ metadata) skipped."""
    files: list[Path] = []
    for sub in ("cur", "new"):
        try:
            names = sorted(os.listdir(path / sub))
        except OSError as e:
            raise SourceError(f"{path / sub}: cannot list maildir: {e.strerror or e}") from e
        files += [path / sub / n for n in names if not n.startswith(".")]
    return [f for f in files if f.is_file()]


def _iter_eml(path: Path) -> Iterator[RawMail]:
    yield RawMail(_strip_envelope(_read_bytes(path)), str(path))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from e


def _strip_envelope(data: bytes) -> bytes:
    """Drop a leading mbox ``From `` envelope line (some tools keep it in single files)."""
    if not data.startswith(b"From "):
        return data
    newline = data.find(b"\n")
    return b"" if newline < 0 else data[newline + 1 :]


# --- public-inbox git ---------------------------------------------------------------------


def iter_git_epoch(repo: Path, since_commit: str | None = None) -> Iterator[tuple[str, RawMail]]:
    """Yield (commit sha, mail) for each mail commit of a public-inbox git source, oldest first.

    `repo` is one epoch (a bare repository such as a `git clone --mirror` of lore's
    /kvmarm/0) or a v2 inbox directory, whose epochs git/0.git, git/1.git … are read in
    numeric order. Deletion commits (tree holds `d`, not `m`) are skipped. With
    `since_commit`, only commits after it are read (incremental mode); epochs before the one
    holding it are skipped.
    """
    repo = Path(repo)
    epochs = _git_dirs(repo)
    if not epochs:
        raise SourceError(f"{repo}: not a git repository or public-inbox v2 inbox")
    for git_dir, since in _plan_epochs(epochs, since_commit):
        yield from _iter_epoch_commits(git_dir, since)


def _plan_epochs(epochs: list[Path], since_commit: str | None) -> list[tuple[Path, str | None]]:
    """Pair each epoch to read with the commit to start after (None: from its beginning)."""
    if since_commit is None:
        return [(e, None) for e in epochs]
    if len(epochs) == 1:
        return [(epochs[0], since_commit)]
    for i, epoch in enumerate(epochs):
        if _is_ancestor(epoch, since_commit):
            return [(epoch, since_commit)] + [(e, None) for e in epochs[i + 1 :]]
    raise SourceError(f"{epochs[0].parent}: commit {since_commit} is in none of the epochs")


def _git_dirs(path: Path) -> list[Path]:
    """Git directories to read for `path`: itself, its .git, or a v2 inbox's epochs."""
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        if path.name == "all.git" and _inbox_epochs(path.parent):
            return _inbox_epochs(path.parent)  # all.git only borrows the epochs' objects
        return [path]
    if (path / ".git" / "HEAD").is_file():
        return [path / ".git"]
    return _inbox_epochs(path)


def _inbox_epochs(path: Path) -> list[Path]:
    """git/<N>.git directories of a public-inbox v2 inbox, in numeric order."""
    numbered: list[tuple[int, Path]] = []
    if (path / "git").is_dir():
        for child in (path / "git").iterdir():
            match = _EPOCH_NAME.fullmatch(child.name)
            if match and (child / "HEAD").is_file():
                numbered.append((int(match.group(1)), child))
    return [p for _, p in sorted(numbered)]


def git_env() -> dict[str, str]:
    """Environment for git: no system or global config, no repository from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    return env


def _git(git_dir: Path, *args: str) -> list[str]:
    return ["git", "--git-dir", str(git_dir), *args]


def _run_git(git_dir: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(_git(git_dir, *args), capture_output=True, env=git_env())
    except FileNotFoundError as e:
        raise SourceError(f"{git_dir}: git is not installed (not found on PATH)") from e


def _has_commits(git_dir: Path) -> bool:
    return _run_git(git_dir, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode == 0


def _is_ancestor(git_dir: Path, commit: str) -> bool:
    if not _has_commits(git_dir):
        return False
    return _run_git(git_dir, "merge-base", "--is-ancestor", commit, "HEAD").returncode == 0


def _git_blob_bytes(git_dir: Path) -> int:
    fmt = "--batch-check=%(objecttype) %(objectsize)"
    done = _run_git(git_dir, "cat-file", "--batch-all-objects", "--unordered", fmt)
    _check_git(git_dir, done.returncode, done.stderr)
    sizes = (line.split() for line in done.stdout.splitlines())
    return sum(int(size) for kind, size in sizes if kind == b"blob")


def _check_git(git_dir: Path, returncode: int, stderr: bytes) -> None:
    if returncode != 0:
        message = stderr.decode("utf-8", "replace").strip() or f"exit status {returncode}"
        raise SourceError(f"{git_dir}: git failed: {message}")


def _iter_epoch_commits(git_dir: Path, since: str | None) -> Iterator[tuple[str, RawMail]]:
    """One `git rev-list` piped into one `git cat-file --batch` asking for each `<commit>:m`."""
    if not _has_commits(git_dir):
        return
    revs = f"{since}..HEAD" if since else "HEAD"
    # %(rest) echoes the commit sha we append to each request, so answers carry it.
    batch = "--batch=%(objectname) %(objecttype) %(objectsize) %(rest)"
    rev_list = _popen(_git(git_dir, "rev-list", "--reverse", revs), stdin=None)
    cat_file = _popen(_git(git_dir, "cat-file", "--buffer", batch), stdin=subprocess.PIPE)
    feeder = threading.Thread(target=_feed_requests, args=(rev_list, cat_file), daemon=True)
    feeder.start()
    try:
        yield from _read_batch(cat_file.stdout, git_dir)  # type: ignore[arg-type]
        _finish(git_dir, rev_list, cat_file, feeder)
    finally:
        _kill(rev_list, cat_file)
        feeder.join()  # it closes cat-file's stdin
        _close_outputs(rev_list, cat_file)


def _popen(args: list[str], stdin: int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=git_env()
    )


def _feed_requests(rev_list: subprocess.Popen[bytes], cat_file: subprocess.Popen[bytes]) -> None:
    """Turn each commit sha from rev-list into a `<sha>:m <sha>` cat-file request."""
    assert rev_list.stdout is not None and cat_file.stdin is not None
    try:
        for line in rev_list.stdout:
            sha = line.strip()
            cat_file.stdin.write(sha + b":m " + sha + b"\n")
    except (OSError, ValueError):
        pass  # cat-file ended early (killed by the reader, or failed): the reader reports it
    finally:
        with contextlib.suppress(OSError, ValueError):
            cat_file.stdin.close()


def _read_batch(out: BinaryIO, git_dir: Path) -> Iterator[tuple[str, RawMail]]:
    while header := out.readline():
        fields = header.split()
        if fields[-1] == b"missing":  # no `m` in this commit's tree: a deletion, skip it
            continue
        _, kind, size, commit = fields
        data = out.read(int(size) + 1)[:-1]
        if kind != b"blob" or len(data) != int(size):
            raise SourceError(f"{git_dir}: unexpected git cat-file output: {header!r}")
        sha = commit.decode()
        yield sha, RawMail(data, f"{git_dir}@{sha}")


def _finish(
    git_dir: Path,
    rev_list: subprocess.Popen[bytes],
    cat_file: subprocess.Popen[bytes],
    feeder: threading.Thread,
) -> None:
    """Wait for both processes; raise SourceError with git's message if either failed."""
    feeder.join()
    for proc in (rev_list, cat_file):
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _check_git(git_dir, proc.wait(), stderr)


def _kill(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _close_outputs(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
