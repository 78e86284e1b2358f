"""Derivation with undated mail (no usable Date header): found by mypy, once a crash.

A pull request whose own Date is missing is matched against every posting of a patch title
it lists; when one of those postings was dated and another was not, picking the newest
compared a datetime with None (TypeError) and the whole derivation stopped.
"""

from __future__ import annotations

from ingest.derive import derive
from ingest.parse import parse_mail
from tests.mailkit import A_C_DIFF

ANN = "Ann Author <ann@example.org>"
MARC = "Marc Maintainer <marc@example.org>"
PULL_BODY = """Paolo,

Here are the fixes.

The following changes since commit 1111111111111111111111111111111111111111:

  Linux 5.17-rc1 (2022-01-23 10:12:53 +0200)

are available in the Git repository at:

  git://git.kernel.org/pub/scm/linux/kernel/git/kvmarm/kvmarm.git tags/kvmarm-fixes-5.17-1

for you to fetch changes up to 2222222222222222222222222222222222222222:

  KVM: arm64: Widget (2022-02-07 10:00:00 +0000)

----------------------------------------------------------------
Ann Author (1):
      KVM: arm64: Widget

 a.c | 1 +
 1 file changed, 1 insertion(+)
"""


def mail(msgid: str, subject: str, sender: str, date: str | None, body: str) -> bytes:
    headers = [f"From: {sender}", f"Subject: {subject}", f"Message-Id: <{msgid}>"]
    if date:
        headers.append(f"Date: {date}")
    return ("\n".join(headers) + "\n\n" + body).encode()


def test_undated_pull_request_over_dated_and_undated_postings() -> None:
    patch_body = "Add.\n\nSigned-off-by: Ann Author <ann@example.org>\n" + A_C_DIFF
    raws = [
        mail("v1@x", "[PATCH] KVM: arm64: Widget", ANN, None, patch_body.format(name="w")),
        mail(
            "v2@x",
            "[PATCH v2] KVM: arm64: Widget",
            ANN,
            "Mon, 07 Feb 2022 10:00:00 +0000",
            patch_body.format(name="w2"),
        ),
        mail("pull@x", "[GIT PULL] KVM/arm64 fixes for 5.17, take #1", MARC, None, PULL_BODY),
    ]
    messages = [parse_mail(r).message for r in raws]
    assert [m.date is None for m in messages] == [True, False, True]
    assert messages[2].pull is not None and messages[2].pull.shortlog  # the rule's input

    d = derive(messages)

    widget = [s for s in d.series if s.title.endswith("Widget")]
    assert len(widget) == 1
    versions = {p.version: p for p in widget[0].versions}
    assert sorted(versions) == [1, 2]
    # The newest dated posting is the one the pull request took; the undated one is not.
    assert versions[2].patches[0].pulled is not None
    assert versions[2].patches[0].pulled.msgid == "pull@x"
    assert versions[1].patches[0].pulled is None
