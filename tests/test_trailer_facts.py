"""Trailer facts on small hand-built threads: scope applied in derivation, authorship by
in-body From:, and one person writing from two addresses."""

from __future__ import annotations

from ingest.parse import in_body_author, parse_mail
from ingest.records import Person
from tests.test_fact_rules import SB, derived, mail

ANN = "Ann Author <ann@example.org>"
MARC = "Marc Maintainer <marc@example.org>"
RITA = "Rita Reviewer <rita@example.org>"


def _posting(*raws: bytes):
    series = derived(*raws).series
    assert len(series) == 1
    return series[0].versions[-1]


def _who(posting, kind: str = "Reviewed-by") -> dict[int, list[str]]:
    return {
        p.n: [t.email for t in p.trailers if t.kind == kind and not t.mismatch and not t.unresolved]
        for p in posting.patches
    }


def _series(n: int, sender: str = ANN, body: str = "Add.\n\n" + SB) -> list[bytes]:
    cover = mail("c@x", f"[PATCH 0/{n}] KVM: arm64: Widgets", sender, 0, "Cover.\n")
    return [cover] + [
        mail(f"p{i}@x", f"[PATCH {i}/{n}] KVM: arm64: Widget {i}", sender, i, body, "c@x", f"w{i}")
        for i in range(1, n + 1)
    ]


def test_cover_reply_for_some_patches_counts_only_on_those() -> None:
    reply = mail(
        "r@x",
        "Re: [PATCH 0/4] KVM: arm64: Widgets",
        RITA,
        10,
        "For patches 2-3:\n\nReviewed-by: Rita Reviewer <rita@example.org>\n",
        "c@x",
    )
    who = _who(_posting(*_series(4), reply))
    assert who == {1: [], 2: ["rita@example.org"], 3: ["rita@example.org"], 4: []}
    given = [t for t in _posting(*_series(4), reply).patches[1].trailers if t.msgid == "r@x"]
    assert [t.scope for t in given] == ["For patches 2-3:"]


def test_whole_series_said_on_one_patch_counts_on_every_patch_of_that_version() -> None:
    reply = mail(
        "r@x",
        "Re: [PATCH 2/3] KVM: arm64: Widget 2",
        RITA,
        10,
        "With that, for the whole series:\n\nReviewed-by: Rita Reviewer <rita@example.org>\n",
        "p2@x",
    )
    assert all(v == ["rita@example.org"] for v in _who(_posting(*_series(3), reply)).values())


def test_range_in_a_reply_to_one_patch_is_a_range_of_the_same_version() -> None:
    reply = mail(
        "r@x",
        "Re: [PATCH 3/3] KVM: arm64: Widget 3",
        RITA,
        10,
        "For 1-2:\n\nAcked-by: Rita Reviewer <rita@example.org>\n",
        "p3@x",
    )
    assert _who(_posting(*_series(3), reply), "Acked-by") == {
        1: ["rita@example.org"],
        2: ["rita@example.org"],
        3: [],
    }


def test_unresolved_scope_is_kept_with_its_phrase_and_not_counted() -> None:
    reply = mail(
        "r@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        RITA,
        10,
        "For the irqchip bits:\n\nAcked-by: Rita Reviewer <rita@example.org>\n",
        "c@x",
    )
    posting = _posting(*_series(2), reply)
    assert _who(posting, "Acked-by") == {1: [], 2: []}
    kept = [t for p in posting.patches for t in p.trailers if t.msgid == "r@x"]
    assert len(kept) == 2 and all(t.unresolved and t.scope == "For the irqchip bits:" for t in kept)


def test_wrong_thread_counts_nowhere() -> None:
    reply = mail(
        "r@x",
        "Re: [PATCH 1/2] KVM: arm64: Widget 1",
        RITA,
        10,
        "Oops, wrong thread: this was meant for the other series.\n\n"
        "Reviewed-by: Rita Reviewer <rita@example.org>\n",
        "p1@x",
    )
    assert _who(_posting(*_series(2), reply)) == {1: [], 2: []}


def test_in_body_from_is_read_like_b4() -> None:
    assert in_body_author("From: Ann Author <ANN@example.org>\n\nAdd.\n") == Person(
        "Ann Author", "ann@example.org"
    )
    assert in_body_author("Add.\nFrom: nobody\n") is None


def test_a_maintainer_sending_someone_elses_patch_author_trailers_never_count() -> None:
    """Marc sends Ann's patch (in-body From: Ann): Ann's Reviewed-by on it is not a review,
    from either of her addresses by name; Marc's is, since he did not write it."""
    body = "From: Ann Author <ann@example.org>\n\nAdd.\n\n" + SB
    sent = _series(2, sender=MARC, body=body)
    ann = mail(
        "a@x",
        "Re: [PATCH 1/2] KVM: arm64: Widget 1",
        ANN,
        10,
        "Reviewed-by: Ann Author <ann@example.org>\n",
        "p1@x",
    )
    ann_other = mail(
        "a2@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        "Ann Author <ann@work.example>",
        11,
        "Tested-by: Ann Author <ann@work.example>\n",
        "c@x",
    )
    marc = mail(
        "m@x",
        "Re: [PATCH 2/2] KVM: arm64: Widget 2",
        MARC,
        12,
        "Reviewed-by: Marc Maintainer <marc@example.org>\n",
        "p2@x",
    )
    posting = _posting(*sent, ann, ann_other, marc)
    assert _who(posting) == {1: [], 2: ["marc@example.org"]}
    assert _who(posting, "Tested-by") == {1: [], 2: []}
    follow_ups = [t for p in posting.patches for t in p.trailers if t.source != "inline"]
    assert [t.email for t in follow_ups] == ["marc@example.org"]
    # without the in-body From:, Marc is the author and his own Reviewed-by would not count
    plain = _posting(*_series(2, sender=MARC), marc)
    assert _who(plain) == {1: [], 2: []}


# ---- answers ---------------------------------------------------------------------------


def _answer_db(tmp_path, *raws: bytes):
    from bot.sync.pipeline import ingest_mails
    from ingest.sources import RawMail
    from storage.db import open_db

    db = open_db(tmp_path / "k.db")
    ingest_mails(db, [RawMail(raw, f"fixture:{i}") for i, raw in enumerate(raws)])
    return db


def test_who_reviewed_says_given_from_another_address_and_shows_unmapped_scope(
    tmp_path,
) -> None:
    """zhangfei.gao@foxmail.com gave "Tested-by: Zhangfei Gao <zhangfei.gao@linaro.org>"
    (SMMUv3 Nested Stage v9): not counted, as b4, but not "replied without a trailer" either."""
    from bot.commands.answers import Sources, answer_who_reviewed
    from bot.commands.render_text import render_text
    from storage.views import series_json

    other = mail(
        "t@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        "rita@home.example",
        10,
        "Tested-by: Rita Reviewer <rita@example.org>\n",
        "c@x",
    )
    bare = mail(
        "z@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        "zhang.fei@foxmail.example",
        11,
        "Tested-by: Zhang Fei <zhang.fei@linaro.example>\n",
        "c@x",
    )
    scoped = mail(
        "s@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        "Gus <gus@example.org>",
        12,
        "For the irqchip bits:\n\nAcked-by: Gus <gus@example.org>\n",
        "c@x",
    )
    ranged = mail(
        "n@x",
        "Re: [PATCH 0/2] KVM: arm64: Widgets",
        "Nia <nia@example.org>",
        13,
        "For patch 2:\n\nReviewed-by: Nia <nia@example.org>\n",
        "c@x",
    )
    chat = mail(
        "q@x", "Re: [PATCH 0/2] KVM: arm64: Widgets", "Quinn <q@example.org>", 14, "Why?\n", "c@x"
    )
    db = _answer_db(tmp_path, *_series(2), other, bare, scoped, ranged, chat)
    series = series_json(db)
    assert len(series) == 1
    answer = answer_who_reviewed(db, series[0]["id"], Sources())
    assert [(u.kind, u.email, u.sender) for u in answer.other_address] == [
        ("Tested-by", "rita@example.org", "rita@home.example"),
        ("Tested-by", "zhang.fei@linaro.example", "zhang.fei@foxmail.example"),
    ]
    assert [p.email for p in answer.without_trailer] == ["q@example.org"]
    assert [(u.email, u.scope) for u in answer.unresolved] == [
        ("gus@example.org", "For the irqchip bits:")
    ]
    assert answer.mismatched == 0
    text = render_text(answer)
    assert "Tested-by given from another address (rita@example.org" in text
    assert "Acked-by Gus — for 'For the irqchip bits:', not resolved" in text
    assert "Reviewed-by Nia — for 'For patch 2:'" in text
    patches = series[0]["versions"][0]["patches"]
    assert [
        t.get("scope") for p in patches for t in p["trailers"] if t["email"] == "nia@example.org"
    ] == ["For patch 2:"]
    assert [len(p["scoped_trailers"]) for p in patches] == [1, 1]
    from bot.commands.answers import answer_reviews
    from bot.commands.grammar import parse_command
    from bot.commands.results import Reviews

    reviews = answer_reviews(db, parse_command("reviews nia@example.org"), Sources())
    assert isinstance(reviews, Reviews)
    assert [(i.patches, i.on_cover) for i in reviews.items] == [((2,), False)]


# ---- subject-area scope by the files a patch touches ------------------------------------


def _diff(*paths: str) -> str:
    return "---\n" + "".join(
        f"diff --git a/{p} b/{p}\nindex 1111111..2222222 100644\n--- a/{p}\n+++ b/{p}\n"
        "@@ -1 +1,2 @@\n int a;\n+int b;\n"
        for p in paths
    )


def _by_files(*files: tuple[str, ...]) -> list[bytes]:
    """A cover and one patch per entry; no subject says "selftests"."""
    n = len(files)
    cover = mail("c@x", f"[PATCH 0/{n}] KVM: arm64: Widgets", ANN, 0, "Cover.\n")
    return [cover] + [
        mail(
            f"p{i}@x",
            f"[PATCH {i}/{n}] KVM: arm64: Widget {i}",
            ANN,
            i,
            "Add.\n\n" + SB + _diff(*paths),
            "c@x",
        )
        for i, paths in enumerate(files, 1)
    ]


def _cover_reply(said: str) -> bytes:
    body = f"{said}\n\nReviewed-by: Rita Reviewer <rita@example.org>\n"
    return mail("r@x", "Re: [PATCH 0/3] KVM: arm64: Widgets", RITA, 10, body, "c@x")


def test_a_named_area_selects_the_patch_whose_files_are_in_it() -> None:
    """ "For the selftest changes:" on the cover counts only on the patch touching
    tools/testing/selftests/, though its subject does not say selftests."""
    files = (
        ("arch/arm64/kvm/sys_regs.c",),
        ("tools/testing/selftests/kvm/aarch64/widgets.c",),
        ("arch/arm64/kvm/vgic/vgic-v3.c", "include/kvm/arm_vgic.h"),
    )
    raws = _by_files(*files)
    assert parse_mail(raws[2]).message.paths == files[1]
    assert parse_mail(raws[0]).message.paths == ()  # a cover touches no files
    assert _who(_posting(*raws, _cover_reply("For the selftest changes:"))) == {
        1: [],
        2: ["rita@example.org"],
        3: [],
    }
    assert _who(_posting(*raws, _cover_reply("For the vgic parts:"))) == {
        1: [],
        2: [],
        3: ["rita@example.org"],
    }


def test_a_named_area_no_file_or_subject_names_stays_unresolved() -> None:
    raws = _by_files(("arch/arm64/kvm/a.c",), ("virt/kvm/b.c",), ("arch/arm64/kvm/c.c",))
    posting = _posting(*raws, _cover_reply("For the selftest changes:"))
    assert _who(posting) == {1: [], 2: [], 3: []}
    kept = [t for p in posting.patches for t in p.trailers if t.msgid == "r@x"]
    assert len(kept) == 3
    assert all(t.unresolved and t.scope == "For the selftest changes:" for t in kept)


def test_without_scope_words_the_files_change_nothing() -> None:
    raws = _by_files(("arch/arm64/kvm/a.c",), ("tools/testing/selftests/kvm/b.c",), ("c.c",))
    assert all(v == ["rita@example.org"] for v in _who(_posting(*raws, _cover_reply(""))).values())


def test_touched_paths_are_stored_with_the_message(tmp_path) -> None:
    from storage.messages import load_messages

    raws = _by_files(("arch/arm64/kvm/a.c",), ("tools/testing/selftests/kvm/b.c",), ("c.c",))
    db = _answer_db(tmp_path, *raws)
    paths = {m.msgid: m.paths for m in load_messages(db)}
    assert len(paths) == 4
    assert paths == {
        "c@x": (),
        "p1@x": ("arch/arm64/kvm/a.c",),
        "p2@x": ("tools/testing/selftests/kvm/b.c",),
        "p3@x": ("c.c",),
    }
