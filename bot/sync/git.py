"""`kvmarm sync --git`: backfill from a public-inbox git mirror, reading only new commits.

lore publishes each inbox as git epochs (``git clone --mirror https://lore.kernel.org/kvmarm/0``),
one commit per message.  ``sync_git`` runs ``git fetch`` (naming kvmarm-bot in the
User-Agent, aborting a stalled transfer), then ingests the commits after the last one it
read — the mark, stored per mirror path in the same transaction as the mail.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.progress import Progress, Silent
from bot.sync.pipeline import IngestReport, default_workers, ingest_mails
from ingest.lore.client import default_user_agent
from ingest.sources import SourceError, count_bytes, git_env, iter_git_epoch
from storage.db import Database, writing
from storage.messages import iso
from storage.sync import get_git_mark, record_sync, set_git_mark

GIT_LOW_SPEED = ("1000", "60")  # abort a git transfer below 1000 B/s for 60 s


class SyncError(Exception):
    """A git mirror cannot be cloned, fetched or read."""


@dataclass(frozen=True)
class GitSyncReport:
    """What one git-mirror sync read and stored."""

    source: str  # the repository path
    fetched: bool  # `git fetch` ran
    since_commit: str | None  # read commits after this one (None: from the start)
    commit: str | None  # the mark now
    rewritten: bool  # the old mark is not in the history any more: everything was read
    ingest: IngestReport
    seconds: float

    def as_dict(self) -> dict:
        data = asdict(self)
        data["ingest"] = self.ingest.as_dict()
        return data


def _advance(bar: Progress) -> Callable[[object], None]:
    return lambda _mail: bar.advance()


def sync_git(
    db: Database,
    repo_dir: Path,
    *,
    clone_url: str | None = None,
    fetch: bool = True,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> GitSyncReport:
    """Fetch a public-inbox git mirror and ingest the commits not read before.

    ``repo_dir`` is one epoch (``git clone --mirror https://lore.kernel.org/kvmarm/0``) or a
    v2 inbox directory (``git/0.git`` …).  A missing ``repo_dir`` is cloned from
    ``clone_url`` when given.  The last commit read is the mark; it moves in the same
    transaction as the mail.  If the history was rewritten (the mark is gone), every
    commit is read again and duplicates are skipped.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    bar = progress or Silent()
    repo = Path(repo_dir).expanduser().absolute()
    try:
        result = _sync_git(db, repo, clone_url, fetch, bar)
    except (SyncError, SourceError) as exc:
        before = get_git_mark(db, str(repo))
        record_sync(db, _git_failure(repo, before, at, exc))
        raise
    record_sync(db, _last_git_sync(result, at))
    return result


def _sync_git(
    db: Database, repo: Path, clone_url: str | None, fetch: bool, bar: Progress
) -> GitSyncReport:
    clock = time.monotonic()
    fetched = _update_mirror(repo, clone_url, fetch, bar)
    before = get_git_mark(db, str(repo))
    since = before if before is not None and _reachable(repo, before) else None
    last: list[str] = []

    def mails():
        for sha, mail in iter_git_epoch(repo, since):
            last[:] = [sha]
            yield mail

    bar.update(f"ingest {repo.name}")
    workers = default_workers(count_bytes(repo)) if since is None else 0
    with writing(db, "kvmarm sync --git"):
        report = ingest_mails(db, mails(), workers=workers, on_mail=_advance(bar))
        if last:
            set_git_mark(db, str(repo), last[0])
    return GitSyncReport(
        source=str(repo),
        fetched=fetched,
        since_commit=since,
        commit=last[0] if last else before,
        rewritten=before is not None and since is None,
        ingest=report,
        seconds=round(time.monotonic() - clock, 3),
    )


def _update_mirror(repo: Path, clone_url: str | None, fetch: bool, bar: Progress) -> bool:
    if not repo.exists():
        if clone_url is None:
            raise SyncError(
                f"{repo}: no such directory; create it with "
                f"`git clone --mirror https://lore.kernel.org/kvmarm/0 {repo}`"
            )
        bar.update(f"git clone --mirror {clone_url}")
        _run_git(["clone", "--quiet", "--mirror", clone_url, str(repo)], what=f"clone {clone_url}")
        return True
    remotes = [d for d in epoch_dirs(repo) if _has_remote(d)]
    if not fetch or not remotes:
        return False
    for git_dir in remotes:
        bar.update(f"git fetch {git_dir.name}")
        _run_git(["--git-dir", str(git_dir), "fetch", "--quiet"], what=f"fetch into {git_dir}")
    return True


def epoch_dirs(repo: Path) -> list[Path]:
    """The git directories of a mirror: itself if bare, else a v2 inbox's git/N.git."""
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return [repo]
    numbered = [(p.name.removesuffix(".git"), p) for p in (repo / "git").glob("*.git")]
    return [p for name, p in sorted(numbered, key=lambda n: int(n[0])) if name.isdigit()]


def _has_remote(git_dir: Path) -> bool:
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "remote"], capture_output=True, env=git_env()
    )
    return done.returncode == 0 and bool(done.stdout.strip())


def _reachable(repo: Path, commit: str) -> bool:
    for git_dir in epoch_dirs(repo):
        args = ["git", "--git-dir", str(git_dir), "merge-base", "--is-ancestor", commit, "HEAD"]
        if subprocess.run(args, capture_output=True, env=git_env()).returncode == 0:
            return True
    return False


def _run_git(args: list[str], *, what: str) -> None:
    """git with our User-Agent and a stall timeout; SyncError with git's message on failure."""
    limit, seconds = GIT_LOW_SPEED
    options = ["-c", f"http.userAgent={default_user_agent()} git"]
    options += ["-c", f"http.lowSpeedLimit={limit}", "-c", f"http.lowSpeedTime={seconds}"]
    try:
        done = subprocess.run(["git", *options, *args], capture_output=True, env=git_env())
    except FileNotFoundError as exc:
        raise SyncError("git is not installed (not found on PATH)") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise SyncError(f"git {what} failed: {message}")


def _last_git_sync(report: GitSyncReport, at: datetime) -> dict:
    return {
        "at": iso(at),
        "source": f"git:{report.source}",
        "ok": True,
        "messages": report.ingest.added,
        "fetched": report.ingest.seen,
        "errors": [],
        "high_water": report.commit,
        "seconds": report.seconds,
    }


def _git_failure(repo: Path, mark: str | None, at: datetime, exc: Exception) -> dict:
    return {
        "at": iso(at),
        "source": f"git:{repo}",
        "ok": False,
        "messages": 0,
        "fetched": 0,
        "errors": [str(exc)],
        "high_water": mark,
    }
