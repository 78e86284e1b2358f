"""`git patch-id --stable` for many diffs with one git process.

git patch-id reads a stream of commits: a line `commit <40 hex>` (or `From <40 hex>`, or any
line starting with 40 hex digits) starts the next commit, and everything before a commit's
first line starting with `diff ` is ignored as its message. A diff without such a line (plain
`--- a/x` / `+++ b/x`, or `Index:` without a `diff` line) has no patch id, as in git.

We feed each diff behind a fake header `commit <random prefix><index in hex>` and map the
output lines `<patch id> <commit id>` back by that id (the prefix is random per call, so a mail
cannot spoof another diff's header). Each diff is fed from its first `diff ` line,
so a commit-message line that starts with 40 hex digits cannot split it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import IO, BinaryIO

from ingest.sources import git_env

_PREFIX_BYTES = 8  # fake commit id: 16 random hex digits + the diff index in 24
_FIRST_DIFF_LINE = re.compile(r"^diff ", re.MULTILINE)


class PatchIdError(Exception):
    """git is missing or `git patch-id` failed."""


def compute_patch_ids(diffs: Sequence[str]) -> list[str | None]:
    """Return `git patch-id --stable` of each text (None when git prints none for it)."""
    if not diffs:
        return []
    prefix = secrets.token_hex(_PREFIX_BYTES)
    found = _run_patch_id(_patch_stream(diffs, prefix), prefix)
    return [found.get(_fake_commit_id(prefix, i)) for i in range(len(diffs))]


def _fake_commit_id(prefix: str, index: int) -> str:
    return f"{prefix}{index:0{40 - len(prefix)}x}"


def _patch_stream(diffs: Sequence[str], prefix: str) -> Iterator[bytes]:
    """Yield `commit <fake id>` + the diff from its first `diff ` line, for each diff."""
    for index, text in enumerate(diffs):
        match = _FIRST_DIFF_LINE.search(text)
        if match is None:
            continue  # git would print nothing for it
        body = text[match.start() :]
        if not body.endswith("\n"):
            body += "\n"  # else the next header would be glued to the last line
        yield f"commit {_fake_commit_id(prefix, index)}\n".encode() + _encode(body)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # bytes decoded with surrogateescape
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _run_patch_id(stream: Iterator[bytes], prefix: str) -> dict[str, str]:
    """Run one `git patch-id --stable` on `stream`; return {commit id: patch id}."""
    with tempfile.TemporaryFile() as stderr, _start_git(stderr) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        errors: list[BaseException] = []
        writer = threading.Thread(target=_write_all, args=(proc.stdin, stream, errors))
        writer.start()
        found = _read_ids(proc.stdout, prefix)
        writer.join()
        if errors:
            raise errors[0]
        if proc.wait() != 0:
            stderr.seek(0)
            message = stderr.read().decode("utf-8", "replace").strip()
            raise PatchIdError(f"git patch-id --stable failed ({proc.returncode}): {message}")
    return found


def _start_git(stderr: BinaryIO) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            ["git", "patch-id", "--stable"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=git_env(),
        )
    except FileNotFoundError as e:
        raise PatchIdError("git is not installed (not found on PATH)") from e


def _write_all(pipe: BinaryIO, stream: Iterator[bytes], errors: list[BaseException]) -> None:
    """Write the stream to git's stdin from a thread, so a full stdout pipe cannot deadlock.

    Always closes the pipe, so git ends; an exception is handed to the main thread.
    """
    try:
        for block in stream:
            pipe.write(block)
    except BrokenPipeError:
        pass  # git died; its exit status and stderr tell why
    except BaseException as e:
        errors.append(e)
    finally:
        _close_quietly(pipe)


def _close_quietly(pipe: BinaryIO) -> None:
    with contextlib.suppress(BrokenPipeError):
        pipe.close()


def _read_ids(out: IO[bytes], prefix: str) -> dict[str, str]:
    """Map our fake commit ids to their patch ids; other lines came from text after a diff."""
    found: dict[str, str] = {}
    for line in out:
        fields = line.decode("ascii", "replace").split()
        if len(fields) == 2 and fields[1].startswith(prefix):
            found.setdefault(fields[1], fields[0])
    return found
