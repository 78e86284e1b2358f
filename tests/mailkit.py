"""Hand-built mail for small fixture weeks: postings (cover + patches), replies, notices —
written as real RFC 822 bytes and stored through the real ingest pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.sync.pipeline import ingest_mails
from ingest.sources import RawMail
from storage.db import open_db

MARC = "Marc Zyngier <maz@kernel.org>"
OLIVER = "Oliver Upton <oupton@google.com>"
ANN = "Ann Author <ann@example.org>"
BOB = "Bob Builder <bob@example.org>"
ROBOT = "kernel test robot <lkp@intel.com>"
SYZBOT = "syzbot <syzbot+1234@syzkaller.appspotmail.com>"

_DIFF = """---
 arch/arm64/kvm/{name}.c | 1 +
 1 file changed, 1 insertion(+)

diff --git a/arch/arm64/kvm/{name}.c b/arch/arm64/kvm/{name}.c
index 1111111..2222222 100644
--- a/arch/arm64/kvm/{name}.c
+++ b/arch/arm64/kvm/{name}.c
@@ -1 +1,2 @@
 int a;
+int {name};
"""


# A one-line patch to a.c (no subsystem path): hand-built mails whose files do not matter.
A_C_DIFF = """---
 a.c | 1 +
 1 file changed, 1 insertion(+)

diff --git a/a.c b/a.c
index 1111111..2222222 100644
--- a/a.c
+++ b/a.c
@@ -1 +1,2 @@
 int a;
+int {name};
"""


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """``at("2022-02-07", 9)`` → that day 09:00 UTC."""
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


@dataclass
class MailKit:
    """Collects mails; ``store(path)`` ingests them into a fresh database."""

    mails: list[bytes] = field(default_factory=list)

    def mail(
        self,
        msgid: str,
        subject: str,
        sender: str,
        when: datetime,
        body: str = "Text.\n",
        parent: str | None = None,
        refs: tuple[str, ...] = (),
        diff: str | None = None,
    ) -> str:
        headers = [
            f"Received: from x by lore.example.org; {_rfc(when + timedelta(seconds=5))}",
            f"From: {sender}",
            f"Subject: {subject}",
            f"Date: {_rfc(when)}",
            f"Message-ID: <{msgid}>",
            "List-Id: <kvmarm.lists.cs.columbia.edu>",
        ]
        chain = (*refs, parent) if parent else refs
        if chain:
            headers += [
                f"In-Reply-To: <{chain[-1]}>",
                "References: " + " ".join(f"<{r}>" for r in chain),
            ]
        text = body + (_DIFF.format(name=diff) if diff else "")
        self.mails.append(("\n".join(headers) + "\n\n" + text).encode())
        return msgid

    def posting(
        self,
        prefix: str,
        title: str,
        sender: str,
        when: datetime,
        patches: int,
        *,
        version: int = 1,
        trailers: dict[int, str] | None = None,
    ) -> list[str]:
        """A cover letter and ``patches`` patches; returns [cover, patch 1, …]."""
        tag = f"v{version} " if version > 1 else ""
        total = patches
        cover = self.mail(
            f"{prefix}-v{version}-0@example.org",
            f"[PATCH {tag}0/{total}] {title}",
            sender,
            when,
            f"This series does {title}.\n",
        )
        ids = [cover]
        for n in range(1, patches + 1):
            extra = (trailers or {}).get(n, "")
            ids.append(
                self.mail(
                    f"{prefix}-v{version}-{n}@example.org",
                    f"[PATCH {tag}{n}/{total}] {title} part {n}",
                    sender,
                    when + timedelta(minutes=n),
                    f"Part {n}.\n\n{extra}Signed-off-by: {sender}\n",
                    parent=cover,
                    diff=f"{prefix}{version}p{n}",
                )
            )
        return ids

    def reply(
        self, msgid: str, to: str, subject: str, sender: str, when: datetime, body: str
    ) -> str:
        return self.mail(msgid, f"Re: {subject}", sender, when, body, parent=to)

    def store(self, path: Path, now: datetime):
        db = open_db(path)
        raws = [RawMail(m, f"kit:#{i}") for i, m in enumerate(self.mails, start=1)]
        ingest_mails(db, raws, now=lambda: now)
        return db


def _rfc(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")
