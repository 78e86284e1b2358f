"""Status statements found in replies — phrases taken from the kvmarm archive."""

from __future__ import annotations

import pytest

from ingest.notices import find_applied_notice, find_respin, parse_pull_request


@pytest.mark.parametrize(
    ("text", "verb", "where", "counters"),
    [
        ("Applied to next, thanks!", "applied", "next", ()),
        ("Applied to arm64 (for-next/fixes), thanks!", "applied", "arm64 (for-next/fixes)", ()),
        ("Applied to kvmtool (master), thanks!", "applied", "kvmtool (master)", ()),
        ("Hi,\n\nApplied to target-arm.next, thanks.", "applied", "target-arm.next", ()),
        ("Queued for 5.7. Thanks.", "queued", "5.7", ()),
        ("Queued patches 1-5, thanks.", "queued", None, (1, 2, 3, 4, 5)),
        (
            "Queued, https://gitlab.com/rhdrjones/kvm-unit-tests/commits/arm/queue",
            "queued",
            "https://gitlab.com/rhdrjones/kvm-unit-tests/commits/arm/queue",
            (),
        ),
        ("Pulled, thnaks.  Note that capabilities had to be renumbered", "pulled", None, ()),
        (
            "I've applied this to kvmarm-next with a couple of cleanups, and",
            "applied",
            "kvmarm-next",
            (),
        ),
        ("Applied and pushed to -next. Thanks Andrew for reporting it", "applied", "-next", ()),
        ("Applied, thanks both.", "applied", None, ()),
    ],
)
def test_notices(text: str, verb: str, where: str | None, counters: tuple) -> None:
    notice = find_applied_notice(text)
    assert notice is not None
    assert (notice.verb, notice.where, notice.counters) == (verb, where, counters)


@pytest.mark.parametrize(
    "text",
    [
        "Applied patch ioport.c cleanly.",
        "I have pulled the latest branch and it looks good to me, except for",
        "I wanted to review the patch, but then I noticed that Will\nmerged it. So I settled",
        "applied as well for non-chained counters in the only other called of",
        "merged before this patch. We should also confirm all other architectures",
        "Applied? I do not see it in next.",
    ],
)
def test_not_notices(text: str) -> None:
    assert find_applied_notice(text) is None


def test_b4_ty_list_names_patches_and_commits() -> None:
    text = (
        "Applied to next, thanks!\n\n"
        "[1/3] KVM: arm64: Use read/write spin lock for MMU protection\n"
        "      commit: fcc5bf89635a05e627cdd2e9ec52c989c8dfe2ab\n"
        "[3/3] KVM: selftests: Add vgic initialization\n"
        "      commit: c340f7899af6\n"
    )
    notice = find_applied_notice(text)
    assert notice is not None
    assert notice.items == (
        (
            1,
            "KVM: arm64: Use read/write spin lock for MMU protection",
            "fcc5bf89635a05e627cdd2e9ec52c989c8dfe2ab",
        ),
        (3, "KVM: selftests: Add vgic initialization", "c340f7899af6"),
    )


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Good catch, will fix in v3.", "will fix in v3"),
        ("I'll change them in next version", "I'll change them in next version"),
        ("Please respin without this one.", "Please respin without this one"),
        ("This spinlock version is fine; the round trip is cheap.", None),
        ("Looks good to me.", None),
    ],
)
def test_respin(text: str, found: str | None) -> None:
    assert find_respin(text) == found


def test_pull_request_shortlog() -> None:
    text = (
        "The following changes since commit 9ebcfadb06:\n\n  Linux 5.8-rc3\n\n"
        "are available in the Git repository at:\n\n"
        "  git://git.kernel.org/pub/scm/linux/kernel/git/kvmarm/kvmarm.git tags/kvmarm-5.9\n\n"
        "for you to fetch changes up to 16314874b12b:\n\n"
        "----------------------------------------------------------------\n"
        "Alexander Graf (2):\n"
        "      KVM: arm64: vgic-its: Change default outer cacheability for {PEND, PROP}BASER\n"
        "      KVM: arm: Add trace name for ARM_NISV\n\n"
        "Gavin Shan (1):\n      KVM: arm64: Rename HSR to ESR\n\n"
        " arch/arm64/kvm/arm.c | 2 +-\n"
    )
    pull = parse_pull_request(text)
    assert (
        pull.url
        == "git://git.kernel.org/pub/scm/linux/kernel/git/kvmarm/kvmarm.git tags/kvmarm-5.9"
    )
    assert pull.shortlog == (
        (
            "Alexander Graf",
            "KVM: arm64: vgic-its: Change default outer cacheability for {PEND, PROP}BASER",
        ),
        ("Alexander Graf", "KVM: arm: Add trace name for ARM_NISV"),
        ("Gavin Shan", "KVM: arm64: Rename HSR to ESR"),
    )
