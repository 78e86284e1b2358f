"""ingest.patchid: one `git patch-id --stable` for many diffs, same ids as one run per diff."""

from __future__ import annotations

import email
from pathlib import Path

import b4
import pytest

from ingest.patchid import PatchIdError, compute_patch_ids
from ingest.sources import iter_raw_mails
from tests.shared import shared_data_dir

# Blank context lines and the "-- " signature are spelled \x20, a literal space.
DIFF = """\
diff --git a/arch/arm64/kvm/arm.c b/arch/arm64/kvm/arm.c
index 0123456..89abcde 100644
--- a/arch/arm64/kvm/arm.c
+++ b/arch/arm64/kvm/arm.c
@@ -10,6 +10,6 @@ static int kvm_arm_init(void)
 \tint err;
\x20
-\terr = init_one();
+\terr = init_two();
 \tif (err)
 \t\treturn err;
\x20
"""
PATCH_MAIL = f"""\
KVM: arm64: Use init_two

Fixes a bug introduced by commit
0123456789abcdef0123456789abcdef01234567 ("KVM: arm64: Add init_one"),
a line git patch-id would take for the next commit's id.

Signed-off-by: A U Thor <author@example.org>
---
 arch/arm64/kvm/arm.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

{DIFF}--\x20
2.43.0
"""
NON_GIT_DIFF = """\
--- a/README
+++ b/README
@@ -1 +1 @@
-old
+new
"""
CVS_DIFF = """\
Index: main.c
===================================================================
RCS file: /cvs/main.c,v
diff -u -r1.1 main.c
--- main.c\t1 Jan 2024 00:00:00 -0000\t1.1
+++ main.c\t2 Jan 2024 00:00:00 -0000
@@ -1 +1 @@
-old
+new
"""
EDGE_CASES = [
    DIFF,
    PATCH_MAIL,
    DIFF.rstrip("\n"),  # no final newline
    DIFF.replace("\n", "\r\n"),
    DIFF + "\n-- \nA reply after the signature with another\ndiff --git a/x b/x\n+y\n",
    "From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n" + DIFF,
    DIFF.replace("init_two", "init_twö"),
    NON_GIT_DIFF,
    CVS_DIFF,
    "Looks good to me.\n\nReviewed-by: R <r@example.org>\n",
    "",
]


def oracle(texts: list[str]) -> list[str | None]:
    """One `git patch-id --stable` per text, through b4 (what b4 stores for a patch)."""
    return [b4.LoreMessage.get_patch_id(text) for text in texts]


def test_edge_cases_match_one_git_run_per_diff() -> None:
    assert compute_patch_ids(EDGE_CASES) == oracle(EDGE_CASES)


def test_known_answers() -> None:
    ids = compute_patch_ids([DIFF, PATCH_MAIL, DIFF.rstrip("\n"), NON_GIT_DIFF, ""])
    assert ids[0] is not None and len(ids[0]) == 40
    assert ids[1] == ids[2] == ids[0]  # the commit message and a missing final newline don't count
    assert ids[3:] == [None, None]  # git ignores diffs without a `diff ` line


def test_empty_list_does_not_need_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert compute_patch_ids([]) == []


def test_missing_git_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PatchIdError, match="git is not installed"):
        compute_patch_ids([DIFF])


def test_large_input_does_not_deadlock() -> None:
    """Far more than a pipe buffer each way: needs stdin written while stdout is read."""
    texts = [DIFF.replace("init_two", f"init_{i}") for i in range(20_000)]
    ids = compute_patch_ids(texts)
    assert len(set(ids)) == len(texts)
    assert ids[:3] == oracle(texts[:3])
    assert ids[-1:] == oracle(texts[-1:])


def plain_text(data: bytes) -> str:
    """The first text/plain part, decoded (what a patch's diff is read from)."""
    for part in email.message_from_bytes(data).walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            return decode(payload if isinstance(payload, bytes) else b"", part)
    return ""


def decode(payload: bytes, part: email.message.Message) -> str:
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError):  # unknown or garbled charset name
        return payload.decode("utf-8", "replace")


@pytest.mark.shared
def test_archive_and_patchwork_diffs_match_one_git_run_per_diff() -> None:
    data = shared_data_dir()
    paths = [
        data / "kvmarm-archive" / "kvmarm-2021-02.mbox.gz",
        data / "kvmarm-archive" / "kvmarm-2021-03.mbox.gz",
        *sorted((data / "fixtures" / "patchwork" / "mail").glob("*.mbox")),
    ]
    texts = [plain_text(m.data) for path in paths for m in iter_raw_mails(path)]
    diffs = [t for t in texts if t.startswith("diff ") or "\ndiff " in t]
    assert len(diffs) > 500
    expected = oracle(diffs)
    assert compute_patch_ids(diffs) == expected
    assert sum(i is not None for i in expected) > 500
