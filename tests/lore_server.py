"""A real public-inbox server on 127.0.0.1 for the sync tests (../shared/tools/lore-server).

Building an inbox takes seconds, so servers are shared by the session: ``lore_august`` serves
kvmarm-2020-08, ``lore_two_months`` serves kvmarm-2020-08 and kvmarm-2020-09 (a "fresh
server" that gained a month).  Public-inbox writes its commits deterministically, so both
have the same August history and a git mirror of one fast-forwards to the other.

Skips when Debian's ``public-inbox`` is missing, except under CI=true, where that fails.
Also reads the mboxes independently of our code (``archive_mails``) for expected counts.
"""

from __future__ import annotations

import atexit
import email.header
import email.utils
import gzip
import mailbox
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.shared import shared_data_dir

AUGUST = "kvmarm-2020-08.mbox.gz"
SEPTEMBER = "kvmarm-2020-09.mbox.gz"


@dataclass
class LoreServer:
    directory: Path
    port: int
    inputs: tuple[Path, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/kvmarm"

    def start(self) -> None:
        args = [str(p) for p in self.inputs]
        _run_script("start", str(self.directory), str(self.port), *args)

    def stop(self) -> None:
        _run_script("stop", str(self.directory))


def require_public_inbox() -> None:
    if shutil.which("public-inbox-httpd") is None:
        message = "public-inbox-httpd not found (apt-get install public-inbox)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def lore_server_script() -> Path:
    return shared_data_dir().parent / "tools" / "lore-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_script(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PI_"))}
    done = subprocess.run(
        ["bash", str(lore_server_script()), *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"lore-server {' '.join(args[:2])} failed:\n{done.stderr}")


def start_server(directory: Path, *names: str) -> LoreServer:
    require_public_inbox()
    archive = shared_data_dir() / "kvmarm-archive"
    server = LoreServer(directory, free_port(), tuple(archive / n for n in names))
    server.start()
    return server


# Test modules re-export these fixtures, and pytest then keeps one fixture per module:
# servers are therefore cached here, per input list, and stopped when the process exits.
_RUNNING: dict[tuple[str, ...], LoreServer] = {}


def shared_server(tmp_path_factory, *names: str) -> LoreServer:
    if names not in _RUNNING:
        server = start_server(tmp_path_factory.mktemp("lore") / "srv", *names)
        _RUNNING[names] = server
        atexit.register(server.stop)
    return _RUNNING[names]


@pytest.fixture(scope="session")
def lore_august(tmp_path_factory) -> LoreServer:
    return shared_server(tmp_path_factory, AUGUST)


@pytest.fixture(scope="session")
def lore_two_months(tmp_path_factory) -> LoreServer:
    return shared_server(tmp_path_factory, AUGUST, SEPTEMBER)


# --- the archive, read independently of our code --------------------------------------------


@dataclass(frozen=True)
class ArchiveMail:
    msgid: str
    refs: tuple[str, ...]  # References then In-Reply-To
    subject: str
    sender: str
    received: datetime | None  # public-inbox's rt: first Received with a date, else Date


@pytest.fixture(scope="session")
def august_mails(tmp_path_factory) -> list[ArchiveMail]:
    return archive_mails(AUGUST, tmp_path_factory.mktemp("aug-mbox"))


@pytest.fixture(scope="session")
def september_mails(tmp_path_factory) -> list[ArchiveMail]:
    return archive_mails(SEPTEMBER, tmp_path_factory.mktemp("sep-mbox"))


def archive_mails(name: str, tmp: Path) -> list[ArchiveMail]:
    """Every mail of one archive month, via Python's mailbox module."""
    path = tmp / name.removesuffix(".gz")
    if not path.exists():
        path.write_bytes(
            gzip.decompress((shared_data_dir() / "kvmarm-archive" / name).read_bytes())
        )
    out = []
    for message in mailbox.mbox(path):
        msgid = _ids(message.get("Message-ID", ""))[0]
        refs = _ids(" ".join(map(str, message.get_all("References") or [])))
        refs += [r for r in _ids(message.get("In-Reply-To", "")) if r not in refs]
        decoded = email.header.make_header(email.header.decode_header(message["Subject"] or ""))
        out.append(
            ArchiveMail(
                msgid=msgid,
                refs=tuple(r for r in refs if r != msgid),
                subject=" ".join(str(decoded).split()),
                sender=email.utils.parseaddr(message.get("From", ""))[1].lower(),
                received=_rt(message),
            )
        )
    return out


def _ids(text: str) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", str(text))


def _rt(message: mailbox.mboxMessage) -> datetime | None:
    for value in message.get_all("Received") or []:
        when = _date(str(value).rpartition(";")[2])
        if when is not None:
            return when
    return _date(message.get("Date"))


def _date(text: str | None) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(str(text).strip())
    except (TypeError, ValueError, IndexError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
